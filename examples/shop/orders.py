"""The ``orders`` queue: checkout publishes, shipping consumes, asynchronously.

A tiny broker on a shared SQLite file (``SHOP_QUEUE_DB``): enough to show a real asynchronous
hop.  The trace context travels in the message headers (W3C ``traceparent``), as it does through
Kafka or RabbitMQ: the consumer's span is a CONSUMER child of the producer's span and also links
to it, so the order's fulfilment shows in the checkout's trace without being able to fail it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind

QUEUE = "orders"
DB_PATH = Path(os.environ.get("SHOP_QUEUE_DB") or Path(tempfile.gettempdir(), "shop-queue.db"))

_tracer = trace.get_tracer("shop.orders")


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(DB_PATH, timeout=5)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS messages"
        " (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT, body TEXT, headers TEXT)"
    )
    return conn


def publish(body: dict[str, Any]) -> None:
    """Publish one message on the queue under a PRODUCER span."""
    attributes = {
        "messaging.system": "sqlite",
        "messaging.destination.name": QUEUE,
        "messaging.operation.type": "send",
    }
    with _tracer.start_as_current_span(f"send {QUEUE}", kind=SpanKind.PRODUCER) as span:
        span.set_attributes(attributes)
        headers: dict[str, str] = {}
        propagate.inject(headers)
        conn = _connect()
        try:
            with conn:
                conn.execute(
                    "INSERT INTO messages (queue, body, headers) VALUES (?, ?, ?)",
                    (QUEUE, json.dumps(body), json.dumps(headers)),
                )
        finally:
            conn.close()


def claim(limit: int = 20) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Take up to *limit* messages off the queue (each message goes to exactly one consumer)."""
    conn = _connect()
    try:
        with conn:
            rows = conn.execute(
                "DELETE FROM messages WHERE id IN"
                " (SELECT id FROM messages WHERE queue = ? ORDER BY id LIMIT ?)"
                " RETURNING body, headers",
                (QUEUE, limit),
            ).fetchall()
    finally:
        conn.close()
    return [(json.loads(body), json.loads(headers)) for body, headers in rows]


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
        attributes={
            "messaging.system": "sqlite",
            "messaging.destination.name": QUEUE,
            "messaging.operation.type": "process",
        },
    )
