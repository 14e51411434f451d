"""Forwarding accepted spans upstream: routing by trace id, bounded retrying queues.

A ``Forwarder`` has one or more *groups*; every accepted span goes to exactly one endpoint of
every group.  A sidecar has one group holding all its gateways, so each span goes to one gateway,
chosen by rendezvous hashing of its trace id: all spans of a trace reach the same gateway, from
every sidecar, and when a gateway is added or removed only the traces that hashed to it move.  A
gateway forwarding to backends (Jaeger, Tempo, a vendor) has one group per backend, so every span
goes to every backend.  In a sidecar a gateway given by DNS name (``grpc://`` or ``http://``, e.g.
a headless Service) is expanded to one endpoint per address and re-resolved every
``--resolve-interval``; the queue of an endpoint that disappears is re-routed.

Each endpoint has a ``Lane``: a queue bounded in spans (``--forward-queue-spans``) and a thread
that sends batches (serialized requests concatenate into one request) and retries retryable
failures with exponential backoff, honouring ``Retry-After``/``RetryInfo``.  Every queued byte is
also reserved in the shared ``MemoryBudget``.  A sidecar, where forwarding is the only
destination, refuses a request its queues cannot take (retryably when a queue is full, for good
when the request is larger than a whole queue), so that the client keeps it.  A gateway has
already analysed what it forwards, so it drops and counts instead, by reason: the queue is full
(``forward_queue_full``), the budget is exhausted (``forward_over_budget``).  Other losses: the
upstream refused permanently (``forward_rejected``), or the drain on shutdown ran out of time
(``shutdown``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from podtrace_collector.budget import MemoryBudget
from podtrace_collector.errors import DecodeError, Overloaded, TooLarge
from podtrace_collector.forward.lane import ITEM_OVERHEAD_BYTES, Lane
from podtrace_collector.forward.route import count_spans, rendezvous_pick, split_request
from podtrace_collector.forward.upstream import Target, make_exporter, parse_target
from podtrace_collector.metrics import (
    DROP_FORWARD_OVER_BUDGET,
    DROP_FORWARD_QUEUE_FULL,
    DROP_FORWARD_REJECTED,
    CollectorMetrics,
)
from podtrace_collector.model import Span
from podtrace_collector.receive.decode import parse_protobuf
from podtrace_collector.receive.lean import OtlpRequest

logger = logging.getLogger(__name__)

Resolve = Callable[[str, int], list[str]]
# Batches stay under the 4 MiB that OTLP/gRPC servers accept by default (grpcio, the OTel
# Collector); a single request larger than that is still sent, alone.
MAX_BATCH_BYTES = 4 * 1024 * 1024


def resolve_ipv4_first(host: str, port: int) -> list[str]:
    """The sorted addresses of ``host`` (IPv4 if it has any, else IPv6); raises ``OSError``."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    v4 = sorted({str(i[4][0]) for i in infos if i[0] == socket.AF_INET})
    return v4 or sorted({str(i[4][0]) for i in infos})


class _Group:
    """The endpoints one span may go to (one is picked per trace)."""

    def __init__(self, targets: list[Target], *, expand: bool) -> None:
        self.targets = targets
        self.expand = expand and any(_is_name(t) and not t.tls for t in targets)
        self.lanes: tuple[Lane, ...] = ()

    @property
    def seeds(self) -> list[bytes]:
        return [lane.target.url.encode()[:64] for lane in self.lanes]


class Forwarder:
    """Forwards accepted requests to upstream OTLP endpoints.

    Args:
        urls: the ``--forward`` URLs.
        hashed: ``True`` (sidecar): the URLs form one group, one endpoint per trace;
            ``False`` (gateway): every URL gets every span.
        metrics: where counts go.
        budget: the shared memory budget.
        queue_spans: the bound of each endpoint's queue, in spans.
        token: bearer token sent upstream.
        max_message_bytes: the largest request sent.
        resolve_interval_s: how often DNS names are re-resolved (hashed groups only).
        resolve: address lookup (injectable for tests).
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        hashed: bool,
        metrics: CollectorMetrics,
        budget: MemoryBudget,
        queue_spans: int = 100_000,
        token: str | None = None,
        max_message_bytes: int = 4 * 1024 * 1024,
        resolve_interval_s: float = 30.0,
        resolve: Resolve = resolve_ipv4_first,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        targets = [parse_target(url) for url in urls]
        groups = [targets] if hashed else [[t] for t in targets]
        self._groups = [_Group(g, expand=hashed) for g in groups]
        self._metrics = metrics
        self._budget = budget
        self._lane_args: dict[str, Any] = {
            "queue_spans": queue_spans,
            "retry_initial_s": retry_initial_s,
            "retry_max_s": retry_max_s,
        }
        self._token = token
        self._max_message_bytes = max_message_bytes
        self._resolve = resolve
        self._resolve_interval_s = resolve_interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._resolver: threading.Thread | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Resolve the endpoints and start one sender thread per endpoint."""
        for group in self._groups:
            self._set_endpoints(group, self._endpoints(group))
        if any(group.expand for group in self._groups):
            self._resolver = threading.Thread(
                target=self._resolve_loop, name="podtrace-forward-resolve", daemon=True
            )
            self._resolver.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, drain every queue for at most ``timeout_s``, count what is left."""
        self._closing = True
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        lanes = [lane for group in self._groups for lane in group.lanes]
        for lane in lanes:
            lane.close(deadline)
        for lane in lanes:
            lane.join(deadline)

    @property
    def lanes(self) -> list[Lane]:
        """Every endpoint's lane (for tests and metrics)."""
        return [lane for group in self._groups for lane in group.lanes]

    def queued_spans(self) -> int:
        """Spans waiting in every lane."""
        return sum(lane.spans for lane in self.lanes)

    # -- the hot side ----------------------------------------------------------------------

    def forward(
        self,
        request: OtlpRequest,
        accepted: Sequence[Span] | None,
        *,
        refuse: bool,
        body: bytes | None = None,
    ) -> None:
        """Queue a request's accepted spans for every group.

        Args:
            request: the (possibly enriched) ``LeanRequest``.
            accepted: the spans to forward, or ``None`` for all of the request's spans.
            refuse: refuse what the budget or a queue cannot take (sidecar) instead of
                dropping and counting it (gateway, where the analysis already took the spans).
            body: the request's original bytes, when it was not modified.

        Raises:
            Overloaded: ``refuse`` is set and the budget is exhausted or a queue is full; nothing
                was queued.
            TooLarge: ``refuse`` is set and the request can never fit the budget or a queue.
        """
        if self._closing:
            raise Overloaded("forwarder is shutting down")
        keys = None if accepted is None else {s.trace_id + s.span_id for s in accepted}
        plan = [
            (lane, payload, n)
            for group in self._groups
            for lane, payload, n in self._route(group, request, keys, body)
        ]
        n_bytes = sum(len(p) + ITEM_OVERHEAD_BYTES for _, p, _ in plan)
        n_spans = sum(n for _, _, n in plan)
        if refuse:
            self._budget.reserve(n_bytes, n_spans)
            try:
                _hold_room(plan)
            except (Overloaded, TooLarge):
                self._budget.release(n_bytes, n_spans)
                raise
            for lane, payload, n in plan:
                lane.put(payload, n)
            return
        try:
            self._budget.reserve(n_bytes, n_spans)
        except (Overloaded, TooLarge):
            self._metrics.drop(DROP_FORWARD_OVER_BUDGET, n_spans)
            return
        for lane, payload, n in plan:
            if not lane.offer(payload, n):
                self._budget.release(len(payload) + ITEM_OVERHEAD_BYTES, n)
                self._metrics.drop(DROP_FORWARD_QUEUE_FULL, n)
                self._metrics.forward_dropped.labels(lane.target.url, DROP_FORWARD_QUEUE_FULL).inc(
                    n
                )

    def _route(
        self, group: _Group, request: OtlpRequest, keys: set[bytes] | None, body: bytes | None
    ) -> list[tuple[Lane, bytes, int]]:
        lanes = group.lanes
        if not lanes:
            return []
        if len(lanes) == 1 and keys is None:
            payload = body if body is not None else request.SerializeToString()
            return [(lanes[0], payload, count_spans(request))]
        seeds = group.seeds
        wanted = None if keys is None else set(keys)  # split_request consumes its keys
        parts = split_request(request, wanted, lambda t: rendezvous_pick(t, seeds), len(lanes))
        return [(lanes[i], p, n) for i, (p, n) in enumerate(parts) if n]

    # -- endpoints -------------------------------------------------------------------------

    def _endpoints(self, group: _Group) -> list[Target]:
        if not group.expand:
            return list(group.targets)
        out: list[Target] = []
        for target in group.targets:
            if not _is_name(target) or target.tls:
                out.append(target)
                continue
            try:
                addresses = self._resolve(target.host, target.port)
            except OSError as exc:
                logger.warning("cannot resolve forward target %s: %s", target.url, exc)
                addresses = []
            out.extend(target.with_host(a) for a in addresses) if addresses else out.append(target)
        return sorted(set(out), key=lambda t: t.url)

    def _set_endpoints(self, group: _Group, targets: list[Target]) -> None:
        with self._lock:
            current = {lane.target: lane for lane in group.lanes}
            if set(current) == set(targets):
                return
            lanes = tuple(current.get(t) or self._new_lane(t) for t in targets)
            removed = [lane for t, lane in current.items() if t not in set(targets)]
            group.lanes = lanes
        logger.info(
            "forward endpoints changed",
            extra={"endpoints": [lane.target.url for lane in lanes]},
        )
        for lane in removed:
            self._reroute(group, lane)

    def _new_lane(self, target: Target) -> Lane:
        exporter = make_exporter(
            target, token=self._token, max_message_bytes=self._max_message_bytes
        )
        lane = Lane(
            target,
            exporter,
            metrics=self._metrics,
            budget=self._budget,
            max_batch_bytes=min(self._max_message_bytes, MAX_BATCH_BYTES),
            **self._lane_args,
        )
        lane.start()
        return lane

    def _reroute(self, group: _Group, lane: Lane) -> None:
        """Move a removed endpoint's queue, in-flight batch included, onto the group's endpoints."""
        for payload, n in lane.retire():
            self._budget.release(len(payload) + ITEM_OVERHEAD_BYTES, n)
            try:
                request = parse_protobuf(payload)
            except DecodeError:  # cannot happen for bytes we serialized; never lose silently
                self._metrics.drop(DROP_FORWARD_REJECTED, n)
                continue
            for target_lane, part, count in self._route(group, request, None, None):
                self._budget.force(len(part) + ITEM_OVERHEAD_BYTES, count)
                if not target_lane.offer(part, count):
                    self._budget.release(len(part) + ITEM_OVERHEAD_BYTES, count)
                    self._metrics.drop(DROP_FORWARD_QUEUE_FULL, count)

    def _resolve_loop(self) -> None:
        while not self._stop.wait(self._resolve_interval_s):
            for group in self._groups:
                if group.expand:
                    self._set_endpoints(group, self._endpoints(group))


def _hold_room(plan: list[tuple[Lane, bytes, int]]) -> None:
    """Hold room in every lane of ``plan``, all or nothing.

    Raises:
        TooLarge: a part is larger than its lane's whole queue: it could never be queued.
        Overloaded: a lane's queue is too full now (its upstream is slow or down): retry later.
    """
    held: list[tuple[Lane, int]] = []
    for lane, _, n in plan:
        if n > lane.queue_spans:
            refusal: Exception = TooLarge(
                f"a request of {n} spans for {lane.target.url} is larger than the whole forward"
                f" queue ({lane.queue_spans} spans, --forward-queue-spans); send smaller batches"
            )
        elif lane.reserve(n):
            held.append((lane, n))
            continue
        else:
            refusal = Overloaded(
                f"the forward queue for {lane.target.url} is full ({lane.queue_spans} spans)"
            )
        for other, m in held:
            other.cancel(m)
        raise refusal


def _is_name(target: Target) -> bool:
    try:
        ipaddress.ip_address(target.host)
    except ValueError:
        return True
    return False
