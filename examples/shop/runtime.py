"""What every shop service shares: service discovery, fault injection, the user header.

Configuration comes from the environment, as it would in a pod:

``SHOP_ENDPOINTS_DIR``
    A directory with one file per Service (``payment``, ``cart``, ...), one ``host:port`` per line:
    the Service's ready pods.  Re-read while running, so a rolling update can move traffic the way
    Kubernetes moves a Service's endpoints.  ``SHOP_<SERVICE>_ADDR`` (comma-separated) is the
    static alternative.
``SHOP_FAIL_RATE``
    Share of requests (0..1) this pod fails on purpose: a bad revision.
``SHOP_EXTRA_LATENCY_MS`` / ``SHOP_BASE_LATENCY_MS``
    Extra time added to each request on top of the service's own work.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from opentelemetry import trace

USER_HEADER = "x-user-id"
"""The header carrying the signed-in user from the edge inwards."""

ENDUSER_ID = "enduser.id"
"""The OpenTelemetry attribute naming the user of a request."""

_REREAD_S = 0.5


class NoEndpointsError(RuntimeError):
    """A Service has no ready pods (yet): the caller answers 503, like a real one would."""


class Endpoints:
    """The ready pods of one Service, picked round-robin per request (as kube-proxy would)."""

    def __init__(self, service: str, *, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.service = service
        directory = env.get("SHOP_ENDPOINTS_DIR")
        self._file = Path(directory, service) if directory else None
        static = env.get(f"SHOP_{service.upper()}_ADDR", "")
        self._addresses = [a.strip() for a in static.split(",") if a.strip()]
        self._read_at = 0.0
        self._next = random.randrange(1000)

    def pick(self) -> str:
        """Return one ``host:port`` of the Service; raise `NoEndpointsError` when there is none."""
        self._refresh()
        if not self._addresses:
            raise NoEndpointsError(f"service {self.service!r} has no ready endpoints")
        self._next += 1
        return self._addresses[self._next % len(self._addresses)]

    def url(self, path: str) -> str:
        """Return an ``http://`` URL for *path* on one of the Service's pods."""
        return f"http://{self.pick()}{path}"

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._file is None or now - self._read_at < _REREAD_S:
            return
        self._read_at = now
        try:
            text = self._file.read_text()
        except OSError:
            return  # keep the last known endpoints, as kube-proxy does while the API is away
        self._addresses = [line.strip() for line in text.splitlines() if line.strip()]


class Faults:
    """Deliberate slowness and failure, read from the pod's environment."""

    def __init__(self, *, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.fail_rate = float(env.get("SHOP_FAIL_RATE", "0") or 0)
        self.extra_latency_s = float(env.get("SHOP_EXTRA_LATENCY_MS", "0") or 0) / 1000
        self.base_latency_s = float(env.get("SHOP_BASE_LATENCY_MS", "0") or 0) / 1000

    async def work(self, typical_s: float) -> bool:
        """Spend about *typical_s* (plus any injected delay); return True if this request fails."""
        delay = typical_s * random.uniform(0.5, 1.5) + self.base_latency_s
        if self.extra_latency_s:
            delay += self.extra_latency_s * random.uniform(0.7, 1.3)
        await asyncio.sleep(delay)
        return random.random() < self.fail_rate


def tag_user(user: str | None) -> None:
    """Record the signed-in user on the current request's span."""
    if user:
        trace.get_current_span().set_attribute(ENDUSER_ID, user)


def user_headers(user: str | None) -> dict[str, str]:
    """Headers that carry the user to the next service."""
    return {USER_HEADER: user} if user else {}
