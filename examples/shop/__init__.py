"""An example shop: seven small services that call each other the way a real shop's do.

frontend (HTTP, the entry point) -> catalog (HTTP), recommendation (gRPC), cart (HTTP),
checkout (HTTP) -> cart, catalog, shipping, payment (HTTP) and an ``orders`` queue that
shipping consumes asynchronously.  Run one service per process::

    podtrace run -- python -m shop frontend --port 8080

The code has no tracing set-up of its own: ``podtrace run`` instruments it, and only the standard
OpenTelemetry API is used for what instrumentation cannot know (the user, the queue hop).
"""

from __future__ import annotations

SERVICES = ("frontend", "checkout", "cart", "payment", "shipping", "catalog", "recommendation")
"""Every service of the shop, in the order a caller depends on them (entry point first)."""

INFRASTRUCTURE = ("broker",)
"""Processes the shop needs in a cluster that are not part of its traces."""

__all__ = ["INFRASTRUCTURE", "SERVICES"]
