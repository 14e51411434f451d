"""OTLP clients for the forwarder: where an upstream is, and one export attempt to it.

Upstream URLs (``--forward``):

* ``host:port`` or ``grpc://host:port`` — OTLP/gRPC without TLS; ``grpcs://host:port`` with TLS;
* ``http://host[:port][/path]``, ``https://...`` — OTLP/HTTP protobuf; the path defaults to
  the signal's: ``/v1/traces``, ``/v1/metrics`` or ``/v1/logs``.

An attempt returns an ``Outcome`` rather than raising: success (with the upstream's
``partial_success`` count: the rejected count is field 1 of every signal's response), a
retryable failure (with the delay the upstream asked for through
``Retry-After`` or gRPC ``RetryInfo``), or a permanent one.  Retryable answers follow the OTLP
specification: HTTP 429/502/503/504 and connection errors; gRPC ``UNAVAILABLE``,
``RESOURCE_EXHAUSTED`` (with ``RetryInfo`` only), ``DEADLINE_EXCEEDED``, ``ABORTED``,
``CANCELLED``, ``OUT_OF_RANGE``, ``DATA_LOSS``.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, replace
from datetime import UTC
from typing import Any, Protocol
from urllib.parse import urlsplit

import grpc
import httpx
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from podtrace_collector.errors import ConfigError
from podtrace_collector.signals import SIGNALS, TRACES, Signal

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_RETRYABLE_GRPC = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_RETRYABLE_HTTP = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Target:
    """One upstream endpoint."""

    kind: str  # "grpc" or "http"
    host: str
    port: int
    tls: bool = False
    path: str = "/v1/traces"

    @property
    def url(self) -> str:
        """The canonical URL, also the ``target`` label of the forward metrics."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.kind == "grpc":
            return f"{'grpcs' if self.tls else 'grpc'}://{host}:{self.port}"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{self.path}"

    def with_host(self, host: str) -> Target:
        """The same endpoint at another address (a resolved IP)."""
        return replace(self, host=host)


def parse_target(url: str, *, signal: Signal = TRACES) -> Target:
    """Parse a ``--forward`` URL (``--forward-metrics``, ``--forward-logs`` for those signals).

    An http(s) URL without a path gets the signal's (``/v1/traces``, ``/v1/metrics``,
    ``/v1/logs``), as OTLP exporters do with a base endpoint.

    Raises:
        ConfigError: the URL has an unknown scheme, no host or port, or another signal's path.
    """
    flag = f"--{signal.flag}"
    text = url.strip()
    if "://" not in text:
        text = "grpc://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{flag} {url!r}: bad port", flag=signal.flag) from None
    if scheme not in ("grpc", "grpcs", "http", "https") or not parts.hostname:
        raise ConfigError(
            f"{flag} {url!r}: want host:port, grpc://host:port or"
            f" http(s)://host[:port]{signal.http_path}",
            flag=signal.flag,
        )
    if scheme.startswith("grpc"):
        if port is None:
            raise ConfigError(f"{flag} {url!r}: a gRPC target needs a port", flag=signal.flag)
        return Target("grpc", parts.hostname, port, tls=scheme == "grpcs")
    tls = scheme == "https"
    path = parts.path if parts.path not in ("", "/") else signal.http_path
    other = next((s for s in SIGNALS if s is not signal and path.endswith(s.http_path)), None)
    if other is not None:
        raise ConfigError(
            f"{flag} {url!r}: {path} is where OTLP {other.name} go; {signal.name} go to"
            f" {signal.http_path} (give the base URL, http(s)://host:port, and it is added)",
            flag=signal.flag,
        )
    return Target("http", parts.hostname, port or (443 if tls else 80), tls=tls, path=path)


@dataclass(frozen=True)
class Outcome:
    """The result of one export attempt."""

    ok: bool
    retryable: bool = False
    retry_after_s: float | None = None
    rejected: int = 0
    reason: str = ""


class Exporter(Protocol):
    def send(self, payload: bytes, *, timeout_s: float) -> Outcome: ...

    def close(self) -> None: ...


def make_exporter(
    target: Target, *, token: str | None, max_message_bytes: int, signal: Signal = TRACES
) -> Exporter:
    """An exporter of ``signal`` requests to ``target`` (gRPC or HTTP)."""
    if target.kind == "grpc":
        return GrpcExporter(
            target, token=token, max_message_bytes=max_message_bytes, method=signal.grpc_method
        )
    return HttpExporter(target, token=token)


class GrpcExporter:
    """OTLP/gRPC export of already-serialized requests (no re-encoding)."""

    def __init__(
        self,
        target: Target,
        *,
        token: str | None,
        max_message_bytes: int,
        method: str = EXPORT_METHOD,
    ) -> None:
        host = f"[{target.host}]" if ":" in target.host else target.host
        address = f"{host}:{target.port}"
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            # Reconnect quickly to a restarted gateway (grpcio's default backoff grows to 120 s).
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if target.tls:
            self._channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(), options)
        else:
            self._channel = grpc.insecure_channel(address, options)
        self._call = self._channel.unary_unary(method)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None

    def send(self, payload: bytes, *, timeout_s: float) -> Outcome:
        try:
            answer = self._call(payload, timeout=timeout_s, metadata=self._metadata)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            delay = _retry_info_delay(exc)
            # Per OTLP, RESOURCE_EXHAUSTED is retryable only with RetryInfo: without it, it is
            # typically "message larger than the upstream accepts", which no retry fixes.
            retryable = code in _RETRYABLE_GRPC and (
                code != grpc.StatusCode.RESOURCE_EXHAUSTED or delay is not None
            )
            return Outcome(
                False, retryable=retryable, retry_after_s=delay, reason=f"grpc_{code.name.lower()}"
            )
        return Outcome(True, rejected=_rejected(answer))

    def close(self) -> None:
        self._channel.close()


class HttpExporter:
    """OTLP/HTTP protobuf export of already-serialized requests."""

    def __init__(self, target: Target, *, token: str | None) -> None:
        self._url = target.url
        self._headers = {"Content-Type": "application/x-protobuf"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(headers=self._headers)

    def send(self, payload: bytes, *, timeout_s: float) -> Outcome:
        try:
            response = self._client.post(self._url, content=payload, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return Outcome(False, retryable=True, reason=f"http_{type(exc).__name__.lower()}")
        if response.status_code == 200:
            return Outcome(True, rejected=_rejected(response.content))
        return Outcome(
            False,
            retryable=response.status_code in _RETRYABLE_HTTP,
            retry_after_s=retry_after_s(response.headers.get("retry-after")),
            reason=f"http_{response.status_code}",
        )

    def close(self) -> None:
        self._client.close()


def _rejected(answer: bytes) -> int:
    try:
        return int(ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans)
    except Exception:  # an unparsable success body is still a success
        return 0


def retry_after_s(header: str | None, *, now_s: float | None = None) -> float | None:
    """The delay a ``Retry-After`` header asks for: seconds, or an HTTP-date (RFC 9110).

    ``None`` when absent or unreadable (the caller's own backoff applies); never negative.
    """
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read as UTC
        when = when.replace(tzinfo=UTC)
    now = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - now)


def _retry_info_delay(exc: Any) -> float | None:
    try:
        metadata = exc.trailing_metadata() or ()
    except Exception:
        return None
    for key, value in metadata:
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None
