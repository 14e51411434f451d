"""A small DSL to hand-build traces of ``Span`` objects for tests.

    from tests.collector.analyse.tracebuilder import Trace, deployment

    FRONTEND = deployment("shop", "frontend", "5f7d8c9b4")
    CART = deployment("shop", "cart", "7d9f8c6b5")

    t = Trace()
    root = t.server(FRONTEND, "POST /checkout", method="POST", route="/checkout", user="alice")
    t.call(root, CART, "GET /cart", error=True)  # a CLIENT span in frontend + a SERVER in cart
    spans = t.spans

Times are in milliseconds relative to the trace's base (a minute-aligned Unix time, so the trace
lands in the bucket ``BASE_S``).  A child starts where its parent starts unless told otherwise;
``call`` puts the callee inside its client span with ``gap_ms`` of network on each side.  Span and
trace ids come from process-wide counters, so traces built in one test never collide.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence

from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.model import (
    KIND_CLIENT,
    KIND_CONSUMER,
    KIND_INTERNAL,
    KIND_PRODUCER,
    KIND_SERVER,
    STATUS_ERROR,
    STATUS_UNSET,
    AttrValue,
    Resource,
    Span,
)

BASE_S = 1_764_000_000  # 2025-11-24T16:00:00Z, minute-aligned
_NS_PER_MS = 1_000_000
_span_ids = itertools.count(1)
_trace_ids = itertools.count(1)


def summarize(spans: Sequence[Span]) -> tuple[int, Aggregates]:
    """One trace through the production path (``Analyzer.on_trace``, then ``drain``):
    ``(bucket start in Unix seconds, its Aggregates)``.  Requests whose open ends wait for the
    rest of the trace (an orphan, a client span without its server span) are added as they are,
    as when nothing more of the trace comes."""
    analyzer = Analyzer()
    analyzer.on_trace(spans, late=False)
    analyzer.release_waiting()
    assert analyzer.failed_traces == 0
    ((bucket, agg),) = analyzer.drain().items()
    return bucket, agg


def analysed_fragments(
    fragments: Sequence[Sequence[Span]], analyzer: Analyzer | None = None
) -> Aggregates:
    """Fragments of one trace through one ``Analyzer``, in order, then everything still waiting
    for the rest of its trace released (as past ``--pair-wait``): the aggregates, merged."""
    analyzer = analyzer or Analyzer()
    for f in fragments:
        analyzer.on_trace(list(f), late=False)
    analyzer.release_waiting()
    merged = Aggregates()
    for agg in analyzer.drain().values():
        merged.merge(agg)
    return merged


def deployment(
    namespace: str,
    name: str,
    pod_hash: str = "5f7d8c9b4",
    *,
    version: str = "1.0.0",
    pod: str = "x7k2p",
    via: str = "replicaset",
) -> Resource:
    """A Deployment's pod.  ``via``: "replicaset" (all attributes) or "pod" (pod name only)."""
    attrs: dict[str, AttrValue] = {
        "k8s.namespace.name": namespace,
        "k8s.pod.name": f"{name}-{pod_hash}-{pod}",
        "service.name": name,
        "service.version": version,
    }
    if via == "replicaset":
        attrs["k8s.deployment.name"] = name
        attrs["k8s.replicaset.name"] = f"{name}-{pod_hash}"
    return Resource(attrs)


def statefulset(
    namespace: str, name: str, revision_hash: str | None = None, *, version: str = "1.0.0"
) -> Resource:
    """A StatefulSet's pod, with the controller-revision-hash label when given."""
    attrs: dict[str, AttrValue] = {
        "k8s.namespace.name": namespace,
        "k8s.pod.name": f"{name}-0",
        "k8s.statefulset.name": name,
        "service.name": name,
        "service.version": version,
    }
    if revision_hash is not None:
        attrs["k8s.pod.label.controller-revision-hash"] = revision_hash
    return Resource(attrs)


def daemonset(
    namespace: str, name: str, revision_hash: str | None = None, *, version: str = "1.0.0"
) -> Resource:
    """A DaemonSet's pod, with the controller-revision-hash label when given."""
    attrs: dict[str, AttrValue] = {
        "k8s.namespace.name": namespace,
        "k8s.pod.name": f"{name}-abcde",
        "k8s.daemonset.name": name,
        "service.name": name,
        "service.version": version,
    }
    if revision_hash is not None:
        attrs["k8s.pod.label.controller-revision-hash"] = revision_hash
    return Resource(attrs)


def service(name: str, *, namespace: str | None = None, version: str | None = None) -> Resource:
    """A service outside Kubernetes: only ``service.*`` attributes."""
    attrs: dict[str, AttrValue] = {"service.name": name}
    if namespace is not None:
        attrs["service.namespace"] = namespace
    if version is not None:
        attrs["service.version"] = version
    return Resource(attrs)


def span_id_of(n: int) -> bytes:
    """An 8-byte span id from a number (for tests that wire parents by hand)."""
    return n.to_bytes(8, "big")


class Trace:
    """Builds the spans of one trace; every method appends to ``spans`` and returns the span."""

    def __init__(self, trace_id: bytes | None = None, *, base_s: int = BASE_S) -> None:
        self.trace_id = trace_id or next(_trace_ids).to_bytes(16, "big")
        self.base_ns = base_s * 1_000_000_000
        self.spans: list[Span] = []

    def span(
        self,
        resource: Resource,
        name: str,
        kind: int,
        *,
        parent: Span | None = None,
        parent_id: bytes | None = None,
        span_id: bytes | None = None,
        start_ms: float | None = None,
        dur_ms: float = 10.0,
        error: bool = False,
        attrs: Mapping[str, AttrValue] | None = None,
    ) -> Span:
        """Any span.  ``parent_id`` overrides ``parent`` (orphans, cycles, self-parents)."""
        if start_ms is None:
            start_ns = parent.start_ns if parent is not None else self.base_ns
        else:
            start_ns = self.base_ns + round(start_ms * _NS_PER_MS)
        if parent_id is None:
            parent_id = parent.span_id if parent is not None else b""
        s = Span(
            trace_id=self.trace_id,
            span_id=span_id or span_id_of(next(_span_ids)),
            parent_id=parent_id,
            name=name,
            kind=kind,
            start_ns=start_ns,
            end_ns=start_ns + round(dur_ms * _NS_PER_MS),
            status=STATUS_ERROR if error else STATUS_UNSET,
            attributes=dict(attrs or {}),
            resource=resource,
        )
        self.spans.append(s)
        return s

    def server(
        self,
        resource: Resource,
        name: str = "GET /",
        *,
        parent: Span | None = None,
        start_ms: float | None = None,
        dur_ms: float = 10.0,
        error: bool = False,
        method: str | None = None,
        route: str | None = None,
        user: str | None = None,
        attrs: Mapping[str, AttrValue] | None = None,
        span_id: bytes | None = None,
        parent_id: bytes | None = None,
    ) -> Span:
        """A SERVER span (a request); ``method``, ``route``, ``user`` set HTTP and enduser keys."""
        all_attrs = dict(attrs or {})
        for key, value in (
            ("http.request.method", method),
            ("http.route", route),
            ("enduser.id", user),
        ):
            if value is not None:
                all_attrs[key] = value
        return self.span(
            resource,
            name,
            KIND_SERVER,
            parent=parent,
            parent_id=parent_id,
            span_id=span_id,
            start_ms=start_ms,
            dur_ms=dur_ms,
            error=error,
            attrs=all_attrs,
        )

    def client(
        self,
        parent: Span,
        name: str = "call",
        *,
        start_ms: float | None = None,
        dur_ms: float = 10.0,
        error: bool = False,
    ) -> Span:
        """A CLIENT span in the parent's resource."""
        return self.span(
            parent.resource,
            name,
            KIND_CLIENT,
            parent=parent,
            start_ms=start_ms,
            dur_ms=dur_ms,
            error=error,
        )

    def internal(
        self,
        parent: Span,
        name: str = "work",
        *,
        start_ms: float | None = None,
        dur_ms: float = 10.0,
        error: bool = False,
    ) -> Span:
        """An INTERNAL span in the parent's resource."""
        return self.span(
            parent.resource,
            name,
            KIND_INTERNAL,
            parent=parent,
            start_ms=start_ms,
            dur_ms=dur_ms,
            error=error,
        )

    def call(
        self,
        parent: Span,
        callee: Resource,
        name: str = "GET /",
        *,
        start_ms: float | None = None,
        dur_ms: float = 10.0,
        gap_ms: float = 1.0,
        error: bool = False,
        client_error: bool | None = None,
        user: str | None = None,
    ) -> Span:
        """A synchronous call: a CLIENT span under ``parent`` and the callee's SERVER span in it.

        The client span lasts ``dur_ms + 2 * gap_ms`` (network both ways) and fails with the server
        unless ``client_error`` says otherwise.  Returns the SERVER span.
        """
        client = self.client(
            parent,
            f"call {name}",
            start_ms=start_ms if start_ms is not None else self._ms(parent.start_ns),
            dur_ms=dur_ms + 2 * gap_ms,
            error=error if client_error is None else client_error,
        )
        return self.server(
            callee,
            name,
            parent=client,
            start_ms=self._ms(client.start_ns) + gap_ms,
            dur_ms=dur_ms,
            error=error,
            user=user,
        )

    def publish(
        self,
        parent: Span,
        consumer: Resource,
        name: str = "process",
        *,
        dur_ms: float = 10.0,
        error: bool = False,
    ) -> Span:
        """Asynchronous work: a PRODUCER span under ``parent`` and a CONSUMER span under it."""
        producer = self.span(
            parent.resource, f"send {name}", KIND_PRODUCER, parent=parent, dur_ms=1
        )
        return self.span(consumer, name, KIND_CONSUMER, parent=producer, dur_ms=dur_ms, error=error)

    def shuffled(self, seed: int = 0) -> list[Span]:
        """The spans in a random (seeded) arrival order."""
        out = list(self.spans)
        random.Random(seed).shuffle(out)
        return out

    def _ms(self, ns: int) -> float:
        return (ns - self.base_ns) / _NS_PER_MS


class Clock:
    """Monotonic seconds a test moves by hand (``now``), for the analysis's injectable clocks."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# The shop of the pairing and fragment tests: one pod per workload.
FE = deployment("shop", "frontend", "fe1")
CHK = deployment("shop", "checkout", "chk1")
CART = deployment("shop", "cart", "cart1")
PAY = deployment("shop", "payment", "pay1")
MAIL = deployment("shop", "email", "mail1")
PODS = [FE, CHK, CART, PAY, MAIL]
