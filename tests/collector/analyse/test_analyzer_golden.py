"""The aggregates of the benchmark's traces, pinned: a faster analysis must give the same ones.

``bench/bench_pipeline.py`` is what the analysis is tuned on, so its traces are what a change made
for speed most likely breaks.  The golden file holds every aggregate (every map, key and field,
histogram bins included) of 400 of its traces, through the real decode, assembler and analyser:
once whole, and once cut into fragments by a short trace timeout, so that the pairing of open ends
and late fragments count too.  It was written by the analysis before its hot paths were tuned.

Regenerate it only for a deliberate change of what the analysis computes:
``.venv/bin/python -m tests.collector.analyse.test_analyzer_golden``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path
from typing import Any

from podtrace_collector.aggregate.histogram import Histogram
from podtrace_collector.aggregate.stats import MAPS, Aggregates
from podtrace_collector.analyse.analyzer import Analyzer
from podtrace_collector.assemble import Assembler
from podtrace_collector.receive.decode import extract, parse_protobuf

from bench.bench_pipeline import build_bodies, pipeline
from tests.collector.analyse.tracebuilder import Clock

GOLDEN = Path(__file__).parent / "golden" / "bench_pipeline_aggregates.json.gz"
TRACES = 400


def _canonical(value: object) -> Any:
    if isinstance(value, Histogram):
        return sorted(value.counts.items())
    if isinstance(value, set):
        return sorted(value)
    return value


def _dump(analyzer: Analyzer, buckets: dict[int, Aggregates]) -> dict[str, Any]:
    for bucket, agg in analyzer.drain().items():
        buckets.setdefault(bucket, Aggregates()).merge(agg)
    out: dict[str, Any] = {}
    for bucket, agg in sorted(buckets.items()):
        out[str(bucket)] = {
            spec.name: [
                [list(key), {f.name: _canonical(getattr(v, f.name)) for f in dataclasses.fields(v)}]
                for key, v in sorted(getattr(agg, spec.name).items())
            ]
            for spec in MAPS
        }
    p = analyzer.pairing
    out["counters"] = [analyzer.traces, analyzer.late_traces, analyzer.spans, p.paired, p.unpaired]
    return out


def _fragmented(bodies: list[bytes], pair_wait_s: float = 0.05) -> dict[str, Any]:
    """A 20 ms trace timeout cuts traces into fragments; the analyser drains as a gateway does."""
    clock = Clock()
    analyzer = Analyzer(pair_wait_s=pair_wait_s, clock=clock)
    assembler = Assembler(analyzer, trace_timeout_s=0.02, max_spans=10**7, clock=clock)
    buckets: dict[int, Aggregates] = {}
    for i, body in enumerate(bodies):
        assembler.submit(extract(parse_protobuf(body)).spans)
        clock.now += 0.01
        assembler.tick()
        if i % 7 == 0:
            for bucket, agg in analyzer.drain().items():
                buckets.setdefault(bucket, Aggregates()).merge(agg)
    assembler.close()
    analyzer.release_waiting()
    return _dump(analyzer, buckets)


def aggregates_of_the_bench() -> dict[str, Any]:
    """Every aggregate of the benchmark's first traces, whole and in fragments."""
    bodies, _ = build_bodies(TRACES)
    return {"whole": _dump(pipeline(bodies), {}), "fragments": _fragmented(bodies)}


def test_the_bench_traces_give_the_golden_aggregates() -> None:
    """Whole and in fragments, every map, key and field equals the golden file's."""
    expected = json.loads(gzip.decompress(GOLDEN.read_bytes()))
    got = json.loads(json.dumps(aggregates_of_the_bench()))  # tuples as lists, like the file
    assert got["whole"]["counters"] == expected["whole"]["counters"]
    assert got["fragments"]["counters"] == expected["fragments"]["counters"]
    for run in ("whole", "fragments"):
        for bucket, maps in expected[run].items():
            if bucket == "counters":
                continue
            for name, rows in maps.items():
                assert got[run][bucket][name] == rows, (run, bucket, name)
    assert got == expected


def _failures(run: dict[str, Any]) -> dict[str, Any]:
    """The failure maps of a dumped run, over all its minutes (``revisions``: errors only)."""
    out: dict[str, Any] = {}
    for bucket, maps in run.items():
        if bucket == "counters":
            continue
        for name in ("origins", "impacts", "entry_impacts", "absorbed"):
            for key, value in maps[name]:
                assert (name, *key) not in out  # each trace in one minute: no merge needed
                out[(name, *key)] = value
        for key, value in maps["revisions"]:
            out[("errors", *key)] = (value["errors"], value["origin_errors"])
    return out


def _entries_and_edges(run: dict[str, Any]) -> dict[str, Any]:
    """Entry totals and edges (calls, errors, latency bins) of a dumped run, summed over its
    minutes: a fragment counts in its own minute, which may be the next one of its trace's."""
    out: dict[Any, Any] = {}
    for bucket, maps in run.items():
        if bucket == "counters":
            continue
        for name in ("entry_totals", "edges"):
            for key, value in maps[name]:
                for field, v in value.items():
                    if isinstance(v, list):  # histogram bins
                        for b, n in v:
                            k = (name, *key, field, b)
                            out[k] = out.get(k, 0) + n
                    else:
                        k = (name, *key, field)
                        out[k] = out.get(k, 0) + v
    return out


def test_fragments_attribute_failures_as_the_whole_traces() -> None:
    """Fragments that come within --pair-wait of each other (here 2 s, 200 bodies) give the
    failure maps of the whole traces: origins (hops, traces, users, exemplars), impacts, entry
    impacts, containment, errors and origin errors, key for key and field for field; and the
    entry totals and call edges (calls, errors, latency) of the whole traces."""
    bodies, _ = build_bodies(TRACES)
    whole = json.loads(json.dumps(_dump(pipeline(bodies), {})))
    pieces = json.loads(json.dumps(_fragmented(bodies, pair_wait_s=2.0)))
    assert pieces["counters"][1] > TRACES / 2  # many late fragments
    assert _failures(pieces) == _failures(whole)
    assert sum(1 for k in _failures(whole) if k[0] == "absorbed") > 50
    got, want = _entries_and_edges(pieces), _entries_and_edges(whole)
    diff = {k: got.get(k, 0) - want.get(k, 0) for k in got.keys() | want.keys()}
    paired, unpaired = pieces["counters"][3:5]
    assert paired > 1000 and unpaired <= paired / 100
    # Orphans whose caller came are calls, as whole.  The only requests left as entry points
    # (and their calls missing) are the few that never paired: the bench sends a pod's server
    # span in an earlier batch than its client spans (its spans in start order, where SDKs
    # export in end order), and a request under those client spans cannot find the server
    # span analysed before them (docs/blast-radius.md).
    entries = {k: v for k, v in diff.items() if k[0] == "entry_totals" and k[-1] == "requests"}
    calls = {k: v for k, v in diff.items() if k[0] == "edges" and k[-1] == "calls"}
    assert all(v >= 0 for v in entries.values()) and sum(entries.values()) <= unpaired
    assert all(v <= 0 for v in calls.values()) and -sum(calls.values()) <= unpaired
    assert {k: v for k, v in diff.items() if v and "shop/frontend" in k} == {}


def test_the_golden_file_is_not_trivial() -> None:
    """The pinned aggregates hold failures, latency maps, transit and paired fragments."""
    expected = json.loads(gzip.decompress(GOLDEN.read_bytes()))
    maps = [m for run in expected.values() for b, m in run.items() if b != "counters"]
    for name in ("impacts", "latency_impacts", "entry_latency_impacts", "transit", "absorbed"):
        assert sum(len(m[name]) for m in maps) > 0, name
    traces, late, spans, paired, _ = expected["fragments"]["counters"]
    assert late > 0 and paired > 0 and traces > TRACES and spans > 10 * TRACES


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    text = json.dumps(aggregates_of_the_bench(), sort_keys=True, separators=(",", ":"))
    GOLDEN.write_bytes(gzip.compress(text.encode(), mtime=0))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")
