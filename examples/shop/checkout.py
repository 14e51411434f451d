"""checkout: turns a cart into an order (HTTP).

Calls cart, catalog, shipping and payment synchronously, retries a failed charge once on another
payment pod (a retry that works *absorbs* the failure), then publishes the order on the
``orders`` queue for shipping to fulfil asynchronously.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

from shop import orders
from shop.runtime import USER_HEADER, Endpoints, Faults, NoEndpointsError, tag_user, user_headers

app = FastAPI(title="checkout")
faults = Faults()
cart = Endpoints("cart")
catalog = Endpoints("catalog")
shipping = Endpoints("shipping")
payment = Endpoints("payment")
http = httpx.AsyncClient(timeout=3.0)
queue = orders.backend_from_env()

PAYMENT_ATTEMPTS = 2


class UpstreamError(Exception):
    """A dependency failed; checkout answers 502 and names it."""


async def _call(method: str, endpoints: Endpoints, path: str, **kwargs: Any) -> Any:
    try:
        response = await http.request(method, endpoints.url(path), **kwargs)
    except (httpx.HTTPError, NoEndpointsError) as exc:
        raise UpstreamError(f"{endpoints.service}: {exc}") from exc
    if response.status_code >= 500:
        raise UpstreamError(f"{endpoints.service}: HTTP {response.status_code}")
    response.raise_for_status()
    return response.json()


async def _charge(user: str, amount_cents: int) -> Any:
    body = {"user": user, "amount_cents": amount_cents}
    for attempt in range(PAYMENT_ATTEMPTS):
        try:
            return await _call("POST", payment, "/charge", json=body, headers=user_headers(user))
        except UpstreamError:
            if attempt == PAYMENT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


async def _place_order(user: str) -> dict[str, Any] | JSONResponse:
    basket = await _call("GET", cart, f"/carts/{user}")
    items = basket["items"]
    if not items:
        return JSONResponse({"error": "cart is empty"}, status_code=409)
    ids = ",".join(i["product_id"] for i in items)
    prices = {
        p["id"]: p["price_cents"] for p in await _call("GET", catalog, f"/products?ids={ids}")
    }
    subtotal = sum(prices.get(i["product_id"], 0) * i["quantity"] for i in items)
    quote = await _call("POST", shipping, "/quote", json={"items": len(items)})
    total = subtotal + quote["cost_cents"]
    receipt = await _charge(user, total)
    await _call("DELETE", cart, f"/carts/{user}")
    order_id = uuid.uuid4().hex[:12]
    try:
        await orders.publish(queue, {"order_id": order_id, "user": user, "items": items})
    except (httpx.HTTPError, OSError) as exc:
        raise UpstreamError(f"orders queue: {exc}") from exc
    return {"order_id": order_id, "total_cents": total, "transaction": receipt["transaction_id"]}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness probe."""
    return {"status": "ok"}


@app.post("/checkout", response_model=None)
async def checkout(
    x_user_id: str = Header(alias=USER_HEADER),
) -> dict[str, Any] | JSONResponse:
    """Place the user's order; 502 naming the dependency that failed."""
    tag_user(x_user_id)
    if await faults.work(0.002):
        return JSONResponse({"error": "checkout internal error"}, status_code=500)
    try:
        return await _place_order(x_user_id)
    except UpstreamError as exc:
        return JSONResponse({"error": str(exc)}, status_code=502)
