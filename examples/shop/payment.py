"""payment: charges a card (HTTP).  The service a bad rollout usually breaks in the demo."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from shop.runtime import Faults

app = FastAPI(title="payment")
faults = Faults()


class Charge(BaseModel):
    """A charge request: who pays how much."""

    user: str
    amount_cents: int


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness probe."""
    return {"status": "ok"}


@app.post("/charge", response_model=None)
async def charge(body: Charge) -> dict[str, object] | JSONResponse:
    """Charge the user's card; 500 when this pod's injected fault fires."""
    if await faults.work(0.008):
        return JSONResponse({"error": "card processor connection reset"}, status_code=500)
    if body.amount_cents <= 0:
        return JSONResponse({"error": "amount must be positive"}, status_code=422)
    return {"transaction_id": uuid.uuid4().hex[:16], "amount_cents": body.amount_cents}
