"""``podtrace webhook``'s HTTPS server: the admission endpoints, a health check, and TLS files that
are read again when they change (cert-manager renews the Secret, the kubelet updates the files)."""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from podtrace_collector.errors import ReviewError
from podtrace_collector.inject.admission import Policy, review

logger = logging.getLogger(__name__)

POD_PATH = "/mutate/pod"  # pods annotated podtrace.io/inject: "true"
NAMESPACE_PATH = "/mutate/namespace"  # every pod of a namespace labelled podtrace.io/inject=enabled
SHUTDOWN_TIMEOUT_S = 5
MAX_BODY_BYTES = 8 * 1024 * 1024  # a pod is far smaller; the API server caps objects at ~3 MiB


class ReloadingCertificate:
    """A server ``SSLContext`` whose certificate follows the files: checked at every handshake.

    A failed reload (say the key and certificate are briefly out of step during a renewal) keeps
    the previous certificate and is tried again at the next handshake.
    """

    def __init__(self, cert_file: str, key_file: str) -> None:
        self._files = (cert_file, key_file)
        self._stamp = self._stat()
        self._current = self._load()
        self.context = self._current  # the listening socket's; handshakes switch to _current

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*self._files)
        context.sni_callback = self._on_hello
        return context

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        return tuple(
            (st.st_ino, st.st_mtime_ns, st.st_size) for st in (os.stat(f) for f in self._files)
        )

    def _on_hello(self, conn: ssl.SSLObject, server_name: str | None, context: Any) -> None:
        self.refresh()
        if conn.context is not self._current:
            conn.context = self._current

    def refresh(self) -> None:
        """Load the files again if they changed since the last load."""
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            self._current = self._load()
        except (OSError, ssl.SSLError) as exc:
            logger.warning("tls files not reloaded", extra={"reason": str(exc)})
            return
        self._stamp = stamp
        logger.info("tls certificate reloaded", extra={"cert_file": self._files[0]})


def create_app(policy: Policy) -> Starlette:
    """The ASGI app: ``POST /mutate/pod``, ``POST /mutate/namespace``, ``GET /healthz``."""

    async def mutate(request: Request) -> Response:
        namespace_wide = request.url.path == NAMESPACE_PATH
        body = await _read(request)
        if body is None:
            return _error(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            answer = review(json.loads(body), policy, namespace_wide=namespace_wide)
        except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
            return _error(400, "bad_request", "the body is not JSON")
        except ReviewError as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse(answer)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    routes = [
        Route(POD_PATH, mutate, methods=["POST"]),
        Route(NAMESPACE_PATH, mutate, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def listen(bind: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    return socket.create_server((bind, port), family=family)


def make_server(
    app: Starlette, certificate: ReloadingCertificate, log_level: str
) -> uvicorn.Server:
    """A uvicorn server for ``app`` over TLS; run it with ``server.run(sockets=[listen(...)])``."""
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        log_level=log_level,
        # The API server keeps idle TLS connections open; closing one waits for a close_notify
        # that may never come (30 s): admissions take milliseconds, 5 s is plenty to finish them.
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S,
    )
    config.load()
    config.ssl = certificate.context  # after load(): uvicorn would build its own, never reloaded
    return uvicorn.Server(config)


async def _read(request: Request) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
