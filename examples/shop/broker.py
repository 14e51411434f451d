"""broker: the tiny message broker the shop uses in a cluster (HTTP over a SQLite file).

Infrastructure, not part of the shop's traces: run it without ``podtrace run``, the way a Kafka
or RabbitMQ broker would not carry the application's tracing.  Its clients suppress their own
instrumentation too (see ``shop.orders``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query
from pydantic import BaseModel

from shop.orders import SqliteBackend, backend_from_env

app = FastAPI(title="broker")
store = backend_from_env()
if not isinstance(store, SqliteBackend):
    raise SystemExit("broker: SHOP_QUEUE_URL must not be set for the broker itself")


class Message(BaseModel):
    """One message: its body and its headers (which carry the trace context)."""

    body: dict[str, Any]
    headers: dict[str, str] = {}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness probe."""
    return {"status": "ok"}


@app.post("/queues/{queue}", status_code=202)
async def put(queue: str, message: Message) -> dict[str, str]:
    """Append a message to *queue*."""
    await store.put(queue, message.body, message.headers)
    return {"status": "queued"}


@app.post("/queues/{queue}/take")
async def take(queue: str, limit: int = Query(default=20, ge=1, le=500)) -> dict[str, Any]:
    """Remove and return up to *limit* of *queue*'s oldest messages."""
    messages = await store.take(queue, limit)
    return {"messages": [{"body": body, "headers": headers} for body, headers in messages]}
