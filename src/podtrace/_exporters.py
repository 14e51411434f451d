"""Choosing the span exporter from arguments and the standard OTEL_* variables.

Defaults differ from the bare SDK in one way only: when no ``OTEL_EXPORTER_OTLP_*TIMEOUT`` is
set, the export timeout is 2 s instead of 10 s, so a missing sidecar never stalls a flush or the
process's exit for long. Endpoints are checked first (:mod:`podtrace._endpoints`: a bare
``HOST:PORT`` means ``http://``, anything else that is not an http(s) URL is refused with a
clear message). Everything else (headers, compression, certificates) is left to the exporters,
which read the same variables as everywhere else.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from podtrace import _endpoints
from podtrace import environment_variables as envvars
from podtrace._log import warn_once

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

HTTP_PROTOBUF = "http/protobuf"
GRPC = "grpc"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318/v1/traces"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"


def resolve_protocol(protocol: str | None, environ: Mapping[str, str] | None = None) -> str:
    """Argument, then ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, then ``..._PROTOCOL``, then http."""
    env = os.environ if environ is None else environ
    chosen = (
        protocol
        or env.get(envvars.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "").strip()
        or env.get(envvars.OTEL_EXPORTER_OTLP_PROTOCOL, "").strip()
        or HTTP_PROTOBUF
    ).lower()
    if chosen not in {HTTP_PROTOBUF, GRPC}:
        warn_once(
            logger,
            f"protocol-{chosen}",
            "podtrace: OTLP protocol %r unsupported; using %s",
            chosen,
            HTTP_PROTOBUF,
        )
        return HTTP_PROTOBUF
    return chosen


def resolve_timeout_s(timeout_s: float | None) -> float | None:
    """The export timeout: argument, else None when an OTEL_* variable sets it, else 2 s."""
    if timeout_s is not None:
        return float(timeout_s)
    if envvars.get(envvars.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT) or envvars.get(
        envvars.OTEL_EXPORTER_OTLP_TIMEOUT
    ):
        return None  # the exporter reads the variable itself
    return envvars.DEFAULT_EXPORT_TIMEOUT_S


def make_exporter(
    endpoint: str | None, protocol: str | None, timeout_s: float | None
) -> SpanExporter | None:
    """Build the exporter named by ``OTEL_TRACES_EXPORTER`` (default ``otlp``); None: ``none``."""
    names = [
        n.strip().lower() for n in (envvars.get(envvars.OTEL_TRACES_EXPORTER) or "otlp").split(",")
    ]
    name = names[0] if names else "otlp"
    if len(names) > 1:
        warn_once(
            logger, "exporters-many", "podtrace: only the first of OTEL_TRACES_EXPORTER is used"
        )
    if name == "none":
        return None
    if name == "otlp":
        return _otlp(endpoint, resolve_protocol(protocol), resolve_timeout_s(timeout_s))
    return _from_entry_point(name) or _otlp(
        endpoint, resolve_protocol(protocol), resolve_timeout_s(timeout_s)
    )


def _otlp(endpoint: str | None, protocol: str, timeout_s: float | None) -> SpanExporter:
    if protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=_endpoints.grpc_target(endpoint) if endpoint else None, timeout=timeout_s
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=_http_url(endpoint), timeout=timeout_s)


def _http_url(endpoint: str | None) -> str | None:
    if endpoint:
        return _endpoints.http_traces_url(endpoint)
    found = _endpoints.http_from_environment()
    if found is None:
        return None  # the exporter's default: the sidecar on localhost
    if found.scheme_added:
        warn_once(
            logger,
            f"scheme-{found.variable}",
            "podtrace: %s has no scheme (the OTLP specification wants http:// or https://); "
            "exporting to %s",
            found.variable,
            found.url,
        )
    return found.url


def hasten_for_exit(exporter: object, timeout_s: float) -> bool:
    """Make an OTLP exporter's last requests quick: no retry backoff, each within ``timeout_s``.

    At exit, waiting out a retry backoff for a collector that refused the connection only delays
    the process; a collector that accepted it and never answers costs one request timeout. The
    SDK has no setting for either (the timeout is fixed when the exporter is built, retries stop
    only at its shutdown, which comes after the last export), so this sets the two attributes
    both OTLP exporters of SDK 1.45 read on every export: the timeout and the "shutting down"
    event that ends their retry loop. Returns False for any other exporter, which then keeps its
    own timing; the bound on the exit flush applies either way.
    """
    # HTTP: the retry loop lives in exporter._client; gRPC: in the exporter itself.
    for owner, event_name in (
        (getattr(exporter, "_client", None), "_shutdown_event"),
        (exporter, "_shutdown_in_progress"),
    ):
        event = getattr(owner, event_name, None)
        if not isinstance(event, threading.Event):
            continue
        current = getattr(owner, "_timeout", None)
        if isinstance(current, int | float):
            owner._timeout = min(float(current), timeout_s)  # type: ignore[union-attr]
        event.set()
        return True
    return False


def _from_entry_point(name: str) -> SpanExporter | None:
    from opentelemetry.sdk.trace.export import SpanExporter

    for entry_point in entry_points(group="opentelemetry_traces_exporter"):
        if entry_point.name == name:
            try:
                exporter = entry_point.load()()
            except Exception as exc:
                warn_once(logger, f"exporter-{name}", "podtrace: exporter %r failed: %r", name, exc)
                return None
            return exporter if isinstance(exporter, SpanExporter) else None
    warn_once(
        logger, f"exporter-{name}", "podtrace: unknown OTEL_TRACES_EXPORTER %r; using otlp", name
    )
    return None
