"""The API port's Host-header check, against DNS rebinding.

Without ``--api-token`` the API is open to whoever can reach it, which on a laptop is
``localhost``, and a web page from anywhere can reach localhost: its script makes its own domain
resolve to 127.0.0.1 (DNS rebinding) and the browser then sends the requests with that domain in
``Host``.  So a request is answered only when its ``Host`` is an IP address, ``localhost`` (or a
name under ``.localhost``), or a name allowed with ``--api-allowed-hosts``: exact names
(``podtrace-api.podtrace``), ``.example.com`` for a domain and its subdomains, or ``*`` for any.
Anything else gets ``400 {"error": {"code": "bad_host", ...}}``.  A request without ``Host``
(HTTP/1.0) does not come from a browser and is answered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from podtrace_collector.api.errors import error_response

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AllowedHosts:
    """ASGI middleware answering only requests whose ``Host`` is allowed (see the module)."""

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str] = ()) -> None:
        self.app = app
        names = {name.strip().lower().rstrip(".") for name in allowed if name.strip()}
        self._any = "*" in names
        self._exact = {name for name in names if not name.startswith(".")} | {"localhost"}
        self._suffixes = (*(name for name in names if name.startswith(".")), ".localhost")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._any:
            await self.app(scope, receive, send)
            return
        host = _host(scope)
        if host is None or self.allows(host):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        message = (
            f"host {host!r} is not allowed: use localhost or an IP address,"
            " or allow the name with --api-allowed-hosts"
        )
        await error_response(400, "bad_host", message)(scope, receive, send)

    def allows(self, host: str) -> bool:
        """Whether a request for ``host`` (lower-case, without its port) is answered."""
        if self._any or host in self._exact or f".{host}".endswith(self._suffixes):
            return True
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return True


def _host(scope: Scope) -> str | None:
    """The ``Host`` header's name, lower-case, without port or trailing dot."""
    for name, value in scope["headers"]:
        if name == b"host":
            text = bytes(value).decode("latin-1").strip().lower()
            if text.startswith("["):  # [v6]:port
                return text.split("]", 1)[0] + "]"
            return text.rsplit(":", 1)[0].rstrip(".") if text.count(":") <= 1 else text
    return None
