"""What the receivers do with each signal: one ``ExportRoute`` per signal, on both transports.

* traces — ``TraceRoute`` hands them to the trace pipeline (``ingest.pipeline.Ingest``);
* metrics and logs — ``SignalIngest``: decode (protobuf, or OTLP/JSON converted to protobuf),
  count the items (data points, log records), stamp the pod's attributes on every resource in a
  sidecar (the same ``Enricher`` as spans: the resources have one shape), and forward the request
  unchanged otherwise (the original bytes when nothing was stamped) with a ``SignalForwarder``.

Without an endpoint for the signal (no ``--forward-metrics`` / ``--forward-logs``) a request is
answered per the OTLP specification as a partial success that rejects every item, with a message
naming the flag: the client does not retry it, and the items count as dropped
(``reason="no_destination"``), with one log line the first time.
"""

from __future__ import annotations

import logging
from typing import Protocol

from podtrace_collector.errors import Overloaded, ShuttingDown, TooLarge
from podtrace_collector.ingest.enrich import Enricher
from podtrace_collector.ingest.pipeline import ExportResult, Ingest
from podtrace_collector.metrics import DROP_NO_DESTINATION, CollectorMetrics
from podtrace_collector.receive import lean_signals
from podtrace_collector.receive.decode import encode_response, parse_json
from podtrace_collector.signals import TRACES, Signal

logger = logging.getLogger(__name__)


class ExportRoute(Protocol):
    """One signal's export, as a receiver calls it."""

    @property
    def signal(self) -> Signal: ...

    def export_body(self, body: bytes, *, is_json: bool) -> ExportResult:
        """Take one (decompressed) request body.

        Raises:
            Overloaded, TooLarge, DecodeError: refused; the receiver answers per OTLP.
        """

    def encode(self, result: ExportResult, *, as_json: bool) -> bytes:
        """The export response for ``result``."""


class Forwarding(Protocol):
    """The part of ``forward.signals.SignalForwarder`` that ingest uses."""

    def forward(self, payload: bytes, n_items: int) -> None: ...


class TraceRoute:
    """Traces: the trace pipeline (validation, dedupe, analysis or forwarding)."""

    signal = TRACES

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest

    def export_body(self, body: bytes, *, is_json: bool) -> ExportResult:
        if is_json:
            return self._ingest.export(parse_json(body))
        return self._ingest.export_protobuf(body)

    def encode(self, result: ExportResult, *, as_json: bool) -> bytes:
        return encode_response(result.rejected, result.message, as_json=as_json)


class SignalIngest:
    """Metrics or logs: count, stamp, forward (or reject when there is nowhere to send them).

    Args:
        signal: ``METRICS`` or ``LOGS``.
        metrics: where counts go.
        forwarder: where the signal goes, or ``None`` when no endpoint is configured.
        enricher: stamps pod attributes (sidecar).
    """

    def __init__(
        self,
        signal: Signal,
        *,
        metrics: CollectorMetrics,
        forwarder: Forwarding | None = None,
        enricher: Enricher | None = None,
    ) -> None:
        self.signal = signal
        self._metrics = metrics
        self._forwarder = forwarder
        self._enricher = enricher if enricher else None
        self._warned = False
        self.stopping = False

    def export_body(self, body: bytes, *, is_json: bool) -> ExportResult:
        if self.stopping:
            raise ShuttingDown("collector is shutting down", retry_after_s=1.0)
        if is_json:
            body = lean_signals.json_to_protobuf(self.signal, body)
        request = lean_signals.parse(self.signal, body)
        n = lean_signals.count_items(self.signal, request)
        name = self.signal.name
        self._metrics.signal_received.labels(name).inc(n)
        if self._forwarder is None:
            return self._no_destination(n)
        if self._enricher is not None and self._enricher.stamp(
            lean_signals.resources(self.signal, request)
        ):
            body = request.SerializeToString()
        try:
            self._forwarder.forward(body, n)
        except (Overloaded, TooLarge):
            self._metrics.signal_refused.labels(name).inc(n)
            raise
        self._metrics.signal_accepted.labels(name).inc(n)
        return ExportResult(n, 0, "")

    def encode(self, result: ExportResult, *, as_json: bool) -> bytes:
        return lean_signals.encode_response(
            self.signal, result.rejected, result.message, as_json=as_json
        )

    def _no_destination(self, n: int) -> ExportResult:
        if not n:
            return ExportResult(0, 0, "")
        self._metrics.signal_dropped.labels(self.signal.name, DROP_NO_DESTINATION).inc(n)
        message = (
            f"this podtrace collector forwards no {self.signal.name}: start it with"
            f" --{self.signal.flag} URL, or send them elsewhere"
        )
        if not self._warned:
            self._warned = True  # once: every rejected item is counted anyway
            logger.warning(
                "OTLP %s arrive but have no destination: rejected (partial success)",
                self.signal.name,
                extra={"flag": f"--{self.signal.flag}"},
            )
        return ExportResult(0, n, message)
