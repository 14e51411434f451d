"""frontend: the shop's web edge (HTTP).  Every user request enters here.

The signed-in user arrives in the ``x-user-id`` header and is recorded as ``enduser.id``.  When
recommendation fails, the product page falls back to a fixed list of best sellers: that failure is
absorbed here and never reaches the user.
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shop.recommendation import RecommendationClient
from shop.runtime import USER_HEADER, Endpoints, Faults, NoEndpointsError, tag_user, user_headers

BEST_SELLERS = ["sku-1002", "sku-1005", "sku-1003", "sku-1010"]

app = FastAPI(title="frontend")
faults = Faults()
catalog = Endpoints("catalog")
cart = Endpoints("cart")
checkout = Endpoints("checkout")
recommendations = RecommendationClient()
http = httpx.AsyncClient(timeout=5.0)


class AddItem(BaseModel):
    """A product to put in the cart."""

    product_id: str
    quantity: int = Field(default=1, ge=1, le=99)


async def _injected_failure() -> JSONResponse:
    return JSONResponse({"error": "frontend internal error"}, status_code=500)


async def _call(method: str, endpoints: Endpoints, path: str, **kwargs: Any) -> tuple[int, Any]:
    """Call a backend; its failures become a 502 that names it."""
    try:
        response = await http.request(method, endpoints.url(path), **kwargs)
    except (httpx.HTTPError, NoEndpointsError) as exc:
        return 502, {"error": f"{endpoints.service}: {exc}"}
    if response.status_code >= 500:
        return 502, {"error": f"{endpoints.service}: HTTP {response.status_code}"}
    return response.status_code, response.json()


async def _recommend(user: str, viewed: list[str]) -> tuple[list[str], bool]:
    try:
        return await recommendations.list(user, viewed, timeout_s=1.0), False
    except (grpc.aio.AioRpcError, NoEndpointsError):
        return BEST_SELLERS, True  # the fallback: the page still renders


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness probe."""
    return {"status": "ok"}


@app.get("/products", response_model=None)
async def products(x_user_id: str = Header(alias=USER_HEADER)) -> Any:
    """The product page: the catalog plus recommendations (best sellers when they fail)."""
    tag_user(x_user_id)
    if await faults.work(0.002):
        return _injected_failure()
    status, items = await _call("GET", catalog, "/products")
    if status != 200:
        return JSONResponse(items, status_code=status)
    recommended, fallback = await _recommend(x_user_id, [p["id"] for p in items[:2]])
    return {"products": items, "recommended": recommended, "fallback": fallback}


@app.post("/cart/items", response_model=None)
async def add_to_cart(body: AddItem, x_user_id: str = Header(alias=USER_HEADER)) -> Any:
    """Put a product in the user's cart."""
    tag_user(x_user_id)
    if await faults.work(0.001):
        return _injected_failure()
    status, data = await _call("POST", cart, f"/carts/{x_user_id}/items", json=body.model_dump())
    return JSONResponse(data, status_code=status)


@app.post("/checkout", response_model=None)
async def place_order(x_user_id: str = Header(alias=USER_HEADER)) -> Any:
    """Check the user's cart out."""
    tag_user(x_user_id)
    if await faults.work(0.001):
        return _injected_failure()
    status, data = await _call("POST", checkout, "/checkout", headers=user_headers(x_user_id))
    return JSONResponse(data, status_code=status)
