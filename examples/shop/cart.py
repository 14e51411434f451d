"""cart: each user's shopping cart (HTTP), kept in a database every cart pod shares.

The database is a SQLite file (``SHOP_CART_DB``) standing in for the Redis a real shop would use;
it is not instrumented, so its time stays in cart's own self time.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shop.runtime import Faults

DB_PATH = Path(os.environ.get("SHOP_CART_DB") or Path(tempfile.gettempdir(), "shop-cart.db"))

app = FastAPI(title="cart")
faults = Faults()


class Item(BaseModel):
    """One line of a cart."""

    product_id: str
    quantity: int = Field(default=1, ge=1, le=99)


@contextmanager
def _db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(DB_PATH, timeout=5)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS items (user TEXT, product_id TEXT, quantity INTEGER,"
            " PRIMARY KEY (user, product_id))"
        )
        with conn:
            yield conn
    finally:
        conn.close()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness probe."""
    return {"status": "ok"}


@app.post("/carts/{user}/items", response_model=None)
async def add_item(user: str, item: Item) -> dict[str, object] | JSONResponse:
    """Add *item* to the user's cart."""
    if await faults.work(0.002):
        return JSONResponse({"error": "cart store timeout"}, status_code=503)
    with _db() as conn:
        conn.execute(
            "INSERT INTO items VALUES (?, ?, ?) ON CONFLICT (user, product_id)"
            " DO UPDATE SET quantity = quantity + excluded.quantity",
            (user, item.product_id, item.quantity),
        )
    return {"user": user, "added": item.product_id}


@app.get("/carts/{user}", response_model=None)
async def get_cart(user: str) -> dict[str, object] | JSONResponse:
    """The user's cart."""
    if await faults.work(0.002):
        return JSONResponse({"error": "cart store timeout"}, status_code=503)
    with _db() as conn:
        rows = conn.execute(
            "SELECT product_id, quantity FROM items WHERE user = ? ORDER BY product_id", (user,)
        ).fetchall()
    return {"user": user, "items": [{"product_id": p, "quantity": q} for p, q in rows]}


@app.delete("/carts/{user}", response_model=None)
async def empty_cart(user: str) -> dict[str, object] | JSONResponse:
    """Empty the user's cart (after a successful checkout)."""
    if await faults.work(0.001):
        return JSONResponse({"error": "cart store timeout"}, status_code=503)
    with _db() as conn:
        conn.execute("DELETE FROM items WHERE user = ?", (user,))
    return {"user": user, "items": []}
