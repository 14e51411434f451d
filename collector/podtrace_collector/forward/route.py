"""Routing by trace id: which endpoint a trace goes to, and splitting a request accordingly.

``rendezvous_pick`` is rendezvous (highest random weight) hashing: each endpoint scores a trace id
with a keyed BLAKE2b hash and the highest score wins.  It is deterministic across processes, so
every sidecar sends a trace to the same gateway, and when an endpoint is added or removed only the
traces it wins (or won) move.  ``split_request`` cuts one lean request into one request per
endpoint, copying resource and scope fields into each part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from podtrace_collector.receive.lean import LeanRequest, OtlpRequest


def rendezvous_pick(trace_id: bytes, seeds: Sequence[bytes]) -> int:
    """The index of the endpoint with the highest hash score for ``trace_id``.

    Deterministic across processes (BLAKE2b, not ``hash()``), so every sidecar picks the same
    gateway for a trace.
    """
    best, best_score = 0, b""
    for index, seed in enumerate(seeds):
        score = hashlib.blake2b(trace_id, digest_size=8, key=seed).digest()
        if score > best_score:
            best, best_score = index, score
    return best


def split_request(
    request: OtlpRequest, keys: set[bytes] | None, pick: Callable[[bytes], int], n_parts: int
) -> list[tuple[bytes, int]]:
    """Split a ``LeanRequest`` into ``n_parts`` serialized requests by ``pick(trace_id)``.

    Only spans whose ``trace_id + span_id`` is in ``keys`` are kept (all when ``keys`` is None;
    each key once).  Resource and scope fields are copied into every part that has spans.
    """
    outs = [LeanRequest() for _ in range(n_parts)]
    counts = [0] * n_parts
    chosen: dict[bytes, int] = {}
    for resource_spans in request.resource_spans:
        rs_shell = _shell(resource_spans, "scope_spans")
        rs_parts: dict[int, Any] = {}
        for scope_spans in resource_spans.scope_spans:
            ss_shell = _shell(scope_spans, "spans")
            ss_parts: dict[int, Any] = {}
            for span in scope_spans.spans:
                trace_id = span.trace_id
                if keys is not None:
                    key = trace_id + span.span_id
                    if key not in keys:
                        continue
                    keys.discard(key)
                index = chosen.get(trace_id)
                if index is None:
                    index = chosen[trace_id] = pick(trace_id)
                target = ss_parts.get(index)
                if target is None:
                    rs_part = rs_parts.get(index)
                    if rs_part is None:
                        rs_part = rs_parts[index] = outs[index].resource_spans.add()
                        rs_part.CopyFrom(rs_shell)
                    target = ss_parts[index] = rs_part.scope_spans.add()
                    target.CopyFrom(ss_shell)
                target.spans.add().CopyFrom(span)
                counts[index] += 1
    return [(out.SerializeToString() if n else b"", n) for out, n in zip(outs, counts, strict=True)]


def _shell(message: Any, repeated: str) -> Any:
    shell = type(message)()
    shell.CopyFrom(message)
    shell.ClearField(repeated)
    return shell


def count_spans(request: OtlpRequest) -> int:
    """How many spans a lean request holds."""
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
