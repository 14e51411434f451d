"""shipping: quotes shipping costs (HTTP) and fulfils orders from the ``orders`` queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel

from shop import orders
from shop.runtime import Faults

logger = logging.getLogger(__name__)
faults = Faults()
queue = orders.backend_from_env()
POLL_S = 0.2
BATCH = 20


class Quote(BaseModel):
    """What is being shipped."""

    items: int


async def _fulfil(order: dict[str, Any], headers: dict[str, str]) -> None:
    span = orders.consumer_span(headers)
    with trace.use_span(span, end_on_exit=True):
        span.set_attribute("shop.order.id", str(order.get("order_id", "")))
        if await faults.work(0.004):
            # The order waits for a retry; the customer's checkout has long succeeded.
            span.set_status(Status(StatusCode.ERROR, "label printer offline"))


async def _consume(stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            batch = await queue.take(orders.QUEUE, BATCH)
        except Exception:  # a locked or missing queue file must not kill the consumer
            logger.exception("cannot read the orders queue")
            batch = []
        for order, headers in batch:
            await _fulfil(order, headers)
        if not batch:
            try:
                await asyncio.wait_for(stop.wait(), POLL_S)
            except TimeoutError:
                pass


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(_consume(stop))
    yield
    stop.set()
    await task


app = FastAPI(title="shipping", lifespan=_lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness probe."""
    return {"status": "ok"}


@app.post("/quote", response_model=None)
async def quote(body: Quote) -> dict[str, object] | JSONResponse:
    """The shipping cost of *body*."""
    if await faults.work(0.003):
        return JSONResponse({"error": "carrier rates unavailable"}, status_code=503)
    return {"cost_cents": 490 + 90 * max(body.items - 1, 0)}
