"""``podtrace.init()``: the global TracerProvider with pod identity, batching and OTLP export.

Leaving the process (exit, SIGTERM) is :mod:`podtrace._signals`; forked and multiprocessing
children are :mod:`podtrace._processes`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from podtrace import _export, _instrument, _processes, _signals
from podtrace import environment_variables as envvars
from podtrace._endpoints import EndpointError
from podtrace._exporters import make_exporter
from podtrace._k8s import KubernetesResourceDetector
from podtrace._log import warn_once

logger = logging.getLogger(__name__)

_OPTIONS = frozenset(
    {"exporter", "export_timeout_s", "shutdown_timeout_s", "resource_attributes", "handle_sigterm"}
)

_lock = threading.Lock()
_provider: TracerProvider | None = None


def init(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    instrument: bool = True,
    **options: Any,
) -> TracerProvider:
    """Configure the global OpenTelemetry TracerProvider once, for this pod.

    Args:
        service_name: ``service.name``; wins over ``OTEL_SERVICE_NAME`` and detection.
        endpoint: OTLP endpoint; for ``http/protobuf`` a base URL (``/v1/traces`` is appended
            unless present), for ``grpc`` ``host:port`` (plaintext) or a URL (``https://`` for
            TLS). Default: the standard
            ``OTEL_EXPORTER_OTLP_*ENDPOINT`` variables, else the sidecar on localhost.
        protocol: ``http/protobuf`` (default) or ``grpc``; default from
            ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``.
        instrument: enable every installed contrib instrumentation.
        **options: ``export_timeout_s`` (default 2, or ``OTEL_EXPORTER_OTLP_*TIMEOUT``),
            ``shutdown_timeout_s`` (default 3, or ``PODTRACE_SHUTDOWN_TIMEOUT_S``),
            ``resource_attributes`` (a mapping merged over detection, under ``OTEL_*``),
            ``exporter`` (a ready SpanExporter, replacing OTLP), ``handle_sigterm`` (default True).

    Returns:
        The configured provider; on a second call, the existing one (with a warning).

    Raises:
        TypeError: on an unknown option (a programming error, reported at the call).
    """
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(f"podtrace.init() got unknown option(s): {', '.join(sorted(unknown))}")
    global _provider
    with _lock:
        if _provider is not None:
            logger.warning("podtrace.init() was already called; keeping the existing provider")
            return _provider
        existing = trace.get_tracer_provider()
        if isinstance(existing, TracerProvider):
            logger.warning("podtrace: a TracerProvider is already configured; podtrace leaves it")
            _provider = existing
            return existing
        _provider = _build(service_name, endpoint, protocol, options)
        trace.set_tracer_provider(_provider)
    if instrument and not _sdk_disabled():
        _instrument.instrument_all()
    return _provider


def _sdk_disabled() -> bool:
    return (envvars.get(envvars.OTEL_SDK_DISABLED) or "").lower() == "true"


def _build(
    service_name: str | None, endpoint: str | None, protocol: str | None, options: dict[str, Any]
) -> TracerProvider:
    resource = build_resource(service_name, options.get("resource_attributes"))
    # Our own bounded atexit replaces the SDK's unbounded one.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    if _sdk_disabled():
        return provider
    counting = _counting_exporter(endpoint, protocol, options)
    if counting is not None:
        processor = _batch_processor(counting)
        _export.count_queue_drops(processor)
        provider.add_span_processor(processor)
    timeout_s = options.get("shutdown_timeout_s") or envvars.seconds(
        envvars.PODTRACE_SHUTDOWN_TIMEOUT_S, envvars.DEFAULT_SHUTDOWN_TIMEOUT_S
    )
    flush = _signals.ExitFlush(provider, counting, timeout_s)
    _signals.install_atexit(flush)
    if options.get("handle_sigterm", True):
        _signals.install_sigterm(flush)
    _processes.install(provider, flush)
    return provider


def _counting_exporter(
    endpoint: str | None, protocol: str | None, options: dict[str, Any]
) -> _export.CountingExporter | None:
    given: SpanExporter | None = options.get("exporter")
    if given is not None:
        return _export.CountingExporter(given)  # the app's own: it decides about forks

    def build() -> SpanExporter | None:
        return make_exporter(endpoint, protocol, options.get("export_timeout_s"))

    try:
        exporter = build()
    except EndpointError as exc:
        warn_once(logger, "exporter", "podtrace: %s; no spans will be exported", exc)
        return None
    except Exception as exc:  # e.g. an unreadable certificate: trace nothing, run the app
        warn_once(logger, "exporter", "podtrace: no span exporter (%r); spans dropped", exc)
        return None
    return None if exporter is None else _export.CountingExporter(exporter, rebuild=build)


def _batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    with _signals.sigterm_held():  # its worker thread must never take SIGTERM (see _signals)
        return _new_batch_processor(exporter)


def _new_batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    try:
        return BatchSpanProcessor(exporter)  # reads the OTEL_BSP_* variables
    except ValueError as exc:
        # The SDK rejects inconsistent OTEL_BSP_* values by raising; the app must still start.
        warn_once(logger, "bsp", "podtrace: invalid OTEL_BSP_* settings (%s); using defaults", exc)
        return BatchSpanProcessor(
            exporter, max_queue_size=2048, schedule_delay_millis=5000, max_export_batch_size=512
        )


def build_resource(
    service_name: str | None = None, extra: Mapping[str, Any] | None = None
) -> Resource:
    """The Resource podtrace uses: SDK defaults < Kubernetes < ``extra`` < OTEL_* < argument.

    ``Resource.create()`` runs the SDK's default detectors (telemetry.sdk.*, service.instance.id,
    any in ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS``) and the OTEL_* variables; the Kubernetes
    attributes are merged over it and the explicit variables merged again on top, so that
    explicit settings always win.
    """
    resource = Resource.create()
    try:
        resource = resource.merge(KubernetesResourceDetector().detect())
    except Exception as exc:  # detect() already never raises; belt and braces for the host app
        logger.warning("podtrace: Kubernetes resource detection skipped: %r", exc)
    if extra:
        resource = resource.merge(Resource(dict(extra)))
    resource = resource.merge(OTELResourceDetector().detect())
    if service_name:
        resource = resource.merge(Resource({"service.name": service_name}))
    return resource


def current_provider() -> TracerProvider | None:
    """The provider configured by :func:`init`, or None."""
    return _provider


def reset_for_tests() -> None:
    """Forget the configured provider (tests only; does not undo instrumentation)."""
    global _provider
    with _lock:
        _provider = None
