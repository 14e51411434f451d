"""The ``orders`` queue: checkout publishes, shipping consumes, asynchronously.

The trace context travels in the message headers (W3C ``traceparent``), as it does through Kafka
or RabbitMQ: the consumer's span is a CONSUMER child of the producer's span and also links to it,
so an order's fulfilment shows in the checkout's trace without being able to fail it.

Two tiny brokers stand in for a real one.  On one machine (the demo) the queue is a SQLite file
that every pod shares (``SHOP_QUEUE_DB``).  In a cluster, where pods share no disk, it is the
``broker`` service (``SHOP_QUEUE_URL=http://orders-broker:8080``), reached with instrumentation
suppressed: like most broker clients, the transport itself is not traced, only the
PRODUCER/CONSUMER spans are.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Protocol

import httpx
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Link, SpanKind

QUEUE = "orders"
Message = tuple[dict[str, Any], dict[str, str]]
"""A message body and its headers."""

_tracer = trace.get_tracer("shop.orders")


class Backend(Protocol):
    """Where messages wait: put one, take several (each message is taken once)."""

    async def put(self, queue: str, body: dict[str, Any], headers: dict[str, str]) -> None: ...

    async def take(self, queue: str, limit: int) -> list[Message]: ...


class SqliteBackend:
    """A queue table in a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def put(self, queue: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Append one message."""
        await asyncio.to_thread(self._put, queue, json.dumps(body), json.dumps(headers))

    async def take(self, queue: str, limit: int) -> list[Message]:
        """Remove and return up to *limit* of the oldest messages."""
        rows = await asyncio.to_thread(self._take, queue, limit)
        return [(json.loads(body), json.loads(headers)) for body, headers in rows]

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS messages"
            " (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT, body TEXT, headers TEXT)"
        )
        return conn

    def _put(self, queue: str, body: str, headers: str) -> None:
        conn = self._connect()
        try:
            with conn:
                conn.execute(
                    "INSERT INTO messages (queue, body, headers) VALUES (?, ?, ?)",
                    (queue, body, headers),
                )
        finally:
            conn.close()

    def _take(self, queue: str, limit: int) -> list[tuple[str, str]]:
        conn = self._connect()
        try:
            with conn:
                return conn.execute(
                    "DELETE FROM messages WHERE id IN"
                    " (SELECT id FROM messages WHERE queue = ? ORDER BY id LIMIT ?)"
                    " RETURNING body, headers",
                    (queue, limit),
                ).fetchall()
        finally:
            conn.close()


class BrokerBackend:
    """The shop's ``broker`` service over HTTP, its transport untraced."""

    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=2.0)

    async def put(self, queue: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Append one message."""
        with suppress_instrumentation():
            response = await self.http.post(
                f"/queues/{queue}", json={"body": body, "headers": headers}
            )
        response.raise_for_status()

    async def take(self, queue: str, limit: int) -> list[Message]:
        """Remove and return up to *limit* of the oldest messages."""
        with suppress_instrumentation():
            response = await self.http.post(f"/queues/{queue}/take", params={"limit": limit})
        response.raise_for_status()
        return [(m["body"], m["headers"]) for m in response.json()["messages"]]


def backend_from_env() -> Backend:
    """The broker named by ``SHOP_QUEUE_URL``, else the SQLite file ``SHOP_QUEUE_DB``."""
    if url := os.environ.get("SHOP_QUEUE_URL"):
        return BrokerBackend(url)
    default = Path(tempfile.gettempdir(), "shop-queue.db")
    return SqliteBackend(Path(os.environ.get("SHOP_QUEUE_DB") or default))


def _attributes(operation: str) -> dict[str, str]:
    return {
        "messaging.system": "shop",
        "messaging.destination.name": QUEUE,
        "messaging.operation.type": operation,
    }


async def publish(backend: Backend, body: dict[str, Any]) -> None:
    """Publish one message on the queue under a PRODUCER span."""
    with _tracer.start_as_current_span(
        f"send {QUEUE}", kind=SpanKind.PRODUCER, attributes=_attributes("send")
    ):
        headers: dict[str, str] = {}
        propagate.inject(headers)
        await backend.put(QUEUE, body, headers)


def consumer_span(headers: dict[str, str]) -> trace.Span:
    """Start the CONSUMER span for one message: child of, and linked to, the producer's span."""
    parent = propagate.extract(headers)
    producer = trace.get_current_span(parent).get_span_context()
    links = [Link(producer)] if producer.is_valid else []
    return _tracer.start_span(
        f"process {QUEUE}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=_attributes("process"),
    )
