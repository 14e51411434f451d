"""The OTLP signals the receivers take: traces (analysed), metrics and logs (stamped, forwarded).

Each ``Signal`` names where it arrives (the OTLP/HTTP path, the OTLP/gRPC service), what its
items are called, and the flag that says where it is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Signal:
    """One OTLP signal."""

    name: str  # the ``signal`` label of the metrics
    http_path: str  # OTLP/HTTP path, also the default path of an http(s) forward URL
    grpc_service: str  # OTLP/gRPC service, whose ``Export`` method takes it
    items: str  # what a request holds, in words
    flag: str  # the flag naming where it is forwarded

    @property
    def grpc_method(self) -> str:
        return f"/{self.grpc_service}/Export"


TRACES = Signal(
    "traces",
    "/v1/traces",
    "opentelemetry.proto.collector.trace.v1.TraceService",
    "spans",
    "forward",
)
METRICS = Signal(
    "metrics",
    "/v1/metrics",
    "opentelemetry.proto.collector.metrics.v1.MetricsService",
    "data points",
    "forward-metrics",
)
LOGS = Signal(
    "logs",
    "/v1/logs",
    "opentelemetry.proto.collector.logs.v1.LogsService",
    "log records",
    "forward-logs",
)
SIGNALS = (TRACES, METRICS, LOGS)
FORWARDED = (METRICS, LOGS)  # taken as they are and forwarded, never analysed
