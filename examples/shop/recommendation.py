"""recommendation: products a user may like, served over gRPC.

No protoc step: a generic handler with JSON request/response serializers.  The method is
``/shop.Recommendation/List``; request ``{"user": ..., "product_ids": [...]}``, response
``{"product_ids": [...]}``.  It asks catalog (HTTP) for the candidate products.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from typing import Any

import grpc
import httpx

from shop.runtime import Endpoints, Faults, NoEndpointsError

SERVICE = "shop.Recommendation"
METHOD = f"/{SERVICE}/List"

faults = Faults()
catalog = Endpoints("catalog")
_CHANNEL_OPTIONS = [("grpc.lb_policy_name", "round_robin")]


def encode(message: dict[str, Any]) -> bytes:
    """Serialize a message (JSON instead of protobuf)."""
    return json.dumps(message).encode()


def decode(data: bytes) -> dict[str, Any]:
    """Deserialize a message."""
    result: dict[str, Any] = json.loads(data)
    return result


class Recommender:
    """The ``List`` method, with a shared HTTP client for catalog."""

    def __init__(self) -> None:
        self.http = httpx.AsyncClient(timeout=2.0)

    async def list(self, request: dict[str, Any], context: grpc.aio.ServicerContext) -> Any:
        """Recommend up to four products the user has not just looked at."""
        if await faults.work(0.004):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "model server overloaded")
        try:
            response = await self.http.get(catalog.url("/products"))
            response.raise_for_status()
        except (httpx.HTTPError, NoEndpointsError) as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"catalog: {exc}")
        seen = set(request.get("product_ids", []))
        candidates = [p["id"] for p in response.json() if p["id"] not in seen]
        return {"product_ids": random.sample(candidates, min(4, len(candidates)))}


async def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    recommender = Recommender()
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "List": grpc.unary_unary_rpc_method_handler(
                recommender.list, request_deserializer=decode, response_serializer=encode
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=2.0)
    await recommender.http.aclose()


class RecommendationClient:
    """A caller's side: one channel per recommendation pod, picked per call."""

    def __init__(self) -> None:
        self.endpoints = Endpoints("recommendation")
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def list(self, user: str, product_ids: list[str], *, timeout_s: float) -> list[str]:
        """Call ``List`` on one recommendation pod."""
        address = self.endpoints.pick()
        channel = self._channels.get(address)
        if channel is None:
            # round_robin: with a headless Service (dns:///name:port) calls spread over all pods
            # instead of sticking to the one HTTP/2 connection a ClusterIP would give.
            channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            self._channels[address] = channel
        call = channel.unary_unary(METHOD, request_serializer=encode, response_deserializer=decode)
        reply = await call({"user": user, "product_ids": product_ids}, timeout=timeout_s)
        return list(reply["product_ids"])
