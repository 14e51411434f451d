"""catalog: the product list and prices (HTTP)."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from shop.runtime import Faults

PRODUCTS: dict[str, dict[str, object]] = {
    pid: {"id": pid, "name": name, "price_cents": price}
    for pid, name, price in [
        ("sku-1001", "espresso cup", 900),
        ("sku-1002", "moka pot", 3400),
        ("sku-1003", "grinder", 8900),
        ("sku-1004", "kettle", 4200),
        ("sku-1005", "beans 1kg", 2100),
        ("sku-1006", "milk jug", 1500),
        ("sku-1007", "scale", 2900),
        ("sku-1008", "filter papers", 500),
        ("sku-1009", "tamper", 1900),
        ("sku-1010", "travel mug", 1700),
    ]
}

app = FastAPI(title="catalog")
faults = Faults()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness probe."""
    return {"status": "ok"}


@app.get("/products", response_model=None)
async def list_products(ids: str = "") -> list[dict[str, object]] | JSONResponse:
    """All products, or those named in ``ids`` (comma-separated)."""
    if await faults.work(0.002):
        return JSONResponse({"error": "catalog database unavailable"}, status_code=503)
    if not ids:
        return list(PRODUCTS.values())
    return [PRODUCTS[i] for i in ids.split(",") if i in PRODUCTS]


@app.get("/products/{product_id}", response_model=None)
async def get_product(product_id: str) -> dict[str, object] | JSONResponse:
    """One product; 404 when it does not exist."""
    if await faults.work(0.001):
        return JSONResponse({"error": "catalog database unavailable"}, status_code=503)
    if product_id not in PRODUCTS:
        raise HTTPException(status_code=404, detail="no such product")
    return PRODUCTS[product_id]
