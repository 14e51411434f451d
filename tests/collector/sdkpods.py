"""The end-to-end tests' senders: a shop's pods as real OpenTelemetry SDK tracer providers.

Each pod is a ``TracerProvider`` carrying the Kubernetes resource the library would detect for
it (namespace, Deployment, ReplicaSet, pod), exporting over real OTLP/gRPC or OTLP/HTTP on
loopback through the SDK's own batch processor, as an instrumented app does.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Tracer, set_span_in_context


def pod_provider(
    service: str, rs_hash: str, *, grpc_port: int = 0, http_port: int = 0, **batch: Any
) -> TracerProvider:
    """A pod of Deployment ``shop/<service>`` whose ReplicaSet hash is ``rs_hash`` (its revision),
    exporting to ``grpc_port`` if given, else to ``http_port``; ``batch`` tunes the processor."""
    resource = Resource.create(
        {
            "service.name": service,
            "k8s.namespace.name": "shop",
            "k8s.deployment.name": service,
            "k8s.replicaset.name": f"{service}-{rs_hash}",
            "k8s.pod.name": f"{service}-{rs_hash}-x7k2p",
        }
    )
    exporter: Any = (
        GrpcExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
        if grpc_port
        else HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces")
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter, **batch))
    return provider


class Pods:
    """The pods of one scenario, flushed and shut down together when it has been sent."""

    def __init__(self) -> None:
        self.providers: list[TracerProvider] = []

    def pod(self, service: str, rs_hash: str, *, grpc_port: int = 0, http_port: int = 0) -> Tracer:
        provider = pod_provider(
            service, rs_hash, grpc_port=grpc_port, http_port=http_port, max_export_batch_size=256
        )
        self.providers.append(provider)
        return provider.get_tracer("e2e")

    def shutdown(self) -> None:
        for p in self.providers:
            p.force_flush()
            p.shutdown()


def start_span(tracer: Tracer, name: str, kind: SpanKind, parent: Span | None, start: int) -> Span:
    """A span under ``parent`` (a root without one) started at ``start`` (ns)."""
    ctx = set_span_in_context(parent) if parent is not None else None
    return tracer.start_span(name, context=ctx, kind=kind, start_time=start)


def wait_for_frontend_requests(api: str, expected: int, timeout_s: float = 30.0) -> None:
    """Poll the API until ``shop/frontend`` has ``expected`` requests stored: every trace has
    been assembled, analysed and written."""
    deadline = time.monotonic() + timeout_s
    seen = -1
    while time.monotonic() < deadline:
        body = httpx.get(f"{api}/api/v1/workloads").json()
        frontend = [w for w in body["workloads"] if w["workload"] == "shop/frontend"]
        seen = sum(r["requests"] for r in frontend[0]["revisions"]) if frontend else 0
        if seen >= expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"only {seen} of {expected} frontend requests stored")
