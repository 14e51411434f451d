"""The blast-radius report and the rollouts list as text: pure functions from the API's JSON.

``podtrace blast-radius`` prints these, and so does ``podtrace demo``; anything that has the JSON
of ``/api/v1/blast-radius`` or ``/api/v1/rollouts`` can render it the same way.  Standard library
only.  Missing or odd fields render as ``-``: the functions never raise on a partial answer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_report", "render_rollouts"]


def render_report(report: dict[str, Any]) -> str:
    """A blast-radius report (the JSON of ``/api/v1/blast-radius``) as a readable table.

    Verdict first, then this revision against its baseline, affected services by hop distance,
    entry points, what it slowed through the critical path (``latency_impact``), where failures
    were contained, affected traces and users, exemplar trace ids.
    Missing fields render as ``-``; the function never raises on a partial report.
    """
    parts = [
        _headline(report),
        _verdict(report),
        _slowdown(report),
        _comparison(report),
        _affected(report),
        _entrypoints(report),
        _slowed(report),
        _contained(report),
        _reach(report),
    ]
    return "\n\n".join(p for p in parts if p)


def render_rollouts(body: dict[str, Any], *, workload: str | None = None) -> str:
    """The JSON of ``/api/v1/rollouts`` as a table, newest first (*workload*: whose they are)."""
    rows = [
        [
            str(r.get("started_at", "-")),
            str(r.get("workload", "-")),
            f"{r.get('from_revision', '-')} -> {r.get('to_revision', '-')}",
            str(r.get("verdict", "-")).upper(),
            _num(r.get("requests")),
            _pct(r.get("error_rate")),
            _num(r.get("affected_services")),
            _num(r.get("slowed_services")),
            _num(r.get("affected_users")),
        ]
        for r in _items(body.get("rollouts"))
    ]
    if not rows:
        return f"no rollouts of {workload} seen yet" if workload else "no rollouts seen yet"
    head = [
        "STARTED",
        "WORKLOAD",
        "REVISIONS",
        "VERDICT",
        "REQUESTS",
        "ERRORS",
        "SERVICES",
        "SLOWED",
        "USERS",
    ]
    return _table(head, rows, right={4, 5, 6, 7, 8})


def _headline(r: dict[str, Any]) -> str:
    facts = [f"version {r['version']}" if r.get("version") else "", r.get("kind") or ""]
    if r.get("service"):
        facts.append(f"service {r['service']}")
    extra = ", ".join(f for f in facts if f)
    line = f"{r.get('workload', '?')}  revision {r.get('revision', '?')}"
    line += f"  ({extra})" if extra else ""
    window = _dict(r.get("window"))
    span = f"window {window.get('start', '?')} .. {window.get('end', '?')}"
    if r.get("first_seen"):
        span += f"  (whole minutes; first span of this revision {r['first_seen']})"
    return f"{line}\n{span}"


def _verdict(r: dict[str, Any]) -> str:
    verdict = str(r.get("verdict") or "unknown").upper().replace("_", " ")
    p = r.get("p_value")
    line = f"VERDICT: {verdict}" + (f"  (p = {p:.3g})" if isinstance(p, (int, float)) else "")
    reasons = [f"  - {x}" for x in _texts(r.get("reasons"))]
    if not reasons and not _dict(r.get("baseline")):
        reasons.append("  - no baseline: this is the workload's first revision")
    return "\n".join([line, *reasons])


# Where a self-time regression went (the report's ``slowdown.where``), in words.
_WHERE = {
    "own_code": "slower in its own code",
    "transit": "slower to reach (transit: network and queues between its callers and its pods)",
    "caller": "slower to reach only through its callers' own slowness (not counted)",
}


def _slowdown(r: dict[str, Any]) -> str:
    slow = _dict(r.get("slowdown"))
    if not slow:
        return ""
    where = _WHERE.get(str(slow.get("where")), "self time not split into own time and transit")
    lines = [f"Latency: {where}"]
    rows = [
        [
            str(c.get("workload", "-")),
            _p50_vs(c),
            _p50_vs(_dict(c.get("other_calls"))) if c.get("other_calls") else "none tested",
            "yes" if c.get("slower_everywhere") is True else "no",
        ]
        for c in _items(slow.get("callers"))
    ]
    if rows:
        head = ["CALLER", "TRANSIT TO IT p50", "ITS OTHER CALLS p50", "SLOWER EVERYWHERE"]
        lines.append(_table(head, rows))
    return "\n".join(lines)


def _p50_vs(c: dict[str, Any]) -> str:
    now, before = _dict(c.get("transit_ms")), _dict(c.get("baseline_transit_ms"))
    return f"{_ms(now.get('p50'))} vs {_ms(before.get('p50'))} ms"


def _comparison(r: dict[str, Any]) -> str:
    base = _dict(r.get("baseline"))
    cols = [f"revision {r.get('revision', '?')}"]
    if base:
        cols.append(f"baseline {base.get('revision', '?')}")
    sides = [r, base] if base else [r]
    rows = [
        ["requests", *(_num(x.get("requests")) for x in sides)],
        ["errors", *(_count_rate(x, "errors", "error_rate") for x in sides)],
        ["origin errors", *(_count_rate(x, "origin_errors", "origin_error_rate") for x in sides)],
        ["latency p50/p95/p99", *(_quantiles(x.get("latency_ms")) for x in sides)],
        ["self time p50/p95/p99", *(_quantiles(x.get("self_time_ms")) for x in sides)],
    ]
    return _table(["", *cols], rows)


def _affected(r: dict[str, Any]) -> str:
    rows = [
        [_num(a.get("hops")), str(a.get("workload", "-")), str(a.get("service", "-")),
         _num(a.get("affected_requests")), _of(a.get("affected_requests"), a.get("requests"))]
        for a in _items(r.get("affected_services"))
    ]  # fmt: skip
    hops = r.get("max_hops")
    if not rows:
        return "Affected services\n  none: no failure from this revision reached another service"
    title = f"Affected services (max {_num(hops)} hop{'' if hops == 1 else 's'})"
    head = ["HOPS", "WORKLOAD", "SERVICE", "AFFECTED", "OF REQUESTS"]
    return f"{title}\n{_table(head, rows, right={0, 3, 4})}"


def _entrypoints(r: dict[str, Any]) -> str:
    rows = [
        [str(e.get("workload", "-")), str(e.get("operation", "-")),
         _num(e.get("affected_requests")), _of(e.get("affected_requests"), e.get("requests"))]
        for e in _items(r.get("entrypoints"))
    ]  # fmt: skip
    if not rows:
        return "Entry points\n  none affected"
    head = ["WORKLOAD", "OPERATION", "AFFECTED", "OF REQUESTS"]
    return f"Entry points\n{_table(head, rows, right={2, 3})}"


def _slowed(r: dict[str, Any]) -> str:
    """SPEC §5's latency impact: entry points, then services, biggest added time first."""
    impact = r.get("latency_impact")
    if not isinstance(impact, dict):
        return ""  # a collector that does not compute it
    title = "Slowed (critical path)"
    entries, services = _items(impact.get("entrypoints")), _items(impact.get("services"))
    if not entries and not services:
        return f"{title}\n  none: nothing waited significantly longer on this revision"
    parts = [title]
    if entries:
        rows = [[str(e.get("workload", "-")), str(e.get("operation", "-")), *_slow_cells(e),
                 _num(e.get("affected_users"))] for e in entries]  # fmt: skip
        head = ["ENTRY POINT", "OPERATION", *_SLOW_HEAD, "USERS"]
        parts.append(_table(head, rows, right=set(range(2, 9))))
    if services:
        rows = [[str(s.get("workload", "-")), *_slow_cells(s)] for s in services]
        parts.append(_table(["SERVICE", *_SLOW_HEAD], rows, right=set(range(1, 7))))
    parts.append(
        "  added: the extra time this revision took on their critical path;"
        " share: its part of their own latency (p50)"
    )
    return "\n".join(parts)


_SLOW_HEAD = ["HOPS", "EXPOSED", "OF REQUESTS", "ADDED P50", "ADDED P95", "SHARE"]


def _slow_cells(x: dict[str, Any]) -> list[str]:
    added, share, latency = (_dict(x.get(k)) for k in ("added_ms", "share_ms", "latency_ms"))
    return [
        _num(x.get("hops")),
        _num(x.get("exposed_requests")),
        _of(x.get("exposed_requests"), x.get("requests")),
        _plus_ms(added.get("p50")),
        _plus_ms(added.get("p95")),
        _share_of(share.get("p50"), latency.get("p50")),
    ]


def _plus_ms(value: Any) -> str:
    ms = _ms(value)
    return ms if ms == "-" else f"+{ms} ms"


def _share_of(part: Any, whole: Any) -> str:
    """``"96.5 of 113 ms (85%)"``: how much of the requests' latency was the revision's."""
    if _ms(part) == "-" or _ms(whole) == "-":
        return "-"
    share = f" ({part / whole:.0%})" if whole > 0 else ""
    return f"{_ms(part)} of {_ms(whole)} ms{share}"


def _contained(r: dict[str, Any]) -> str:
    rows = [
        [str(c.get("workload", "-")), str(c.get("service", "-")), _num(c.get("absorbed_requests"))]
        for c in _items(r.get("contained_by"))
    ]
    if not rows:
        return "Contained by\n  nowhere: no failure from this revision was absorbed"
    return f"Contained by\n{_table(['WORKLOAD', 'SERVICE', 'ABSORBED'], rows, right={2})}"


def _reach(r: dict[str, Any]) -> str:
    users = _num(r.get("affected_users"))
    if r.get("affected_users") is None and "affected_users" in r:
        users = f"unknown ({r.get('affected_users_reason') or 'no enduser.id on entry spans'})"
    elif r.get("affected_users_capped"):
        users = f"at least {users}"
    # Failures only: whom the revision slowed is in the "Slowed (critical path)" section.
    traces = _num(r.get("affected_traces"))
    lines = [f"Affected by failures: traces {traces}, users {users}"]
    ids = _texts(r.get("exemplar_trace_ids"))
    if ids:
        lines.append("Exemplar traces")
        lines += [f"  {t}" for t in ids]
    return "\n".join(lines)


def _table(
    head: list[str], rows: list[list[str]], *, right: set[int] | frozenset[int] = frozenset()
) -> str:
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return ("  " + "  ".join(out)).rstrip()

    return "\n".join([line(head), *(line(r) for r in rows)])


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    """The dicts of a JSON list (rows of a table); anything else is ignored."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _texts(value: Any) -> list[str]:
    return (
        [str(v) for v in value if isinstance(v, (str, int, float))]
        if isinstance(value, list)
        else []
    )


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3g}"


def _pct(value: Any) -> str:
    return (
        f"{value:.1%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"
    )


def _of(part: Any, whole: Any) -> str:
    if not isinstance(whole, int) or isinstance(whole, bool):
        return "-"
    share = f" ({part / whole:.1%})" if isinstance(part, int) and whole > 0 else ""
    return f"{whole:,}{share}"


def _count_rate(side: dict[str, Any], count: str, rate: str) -> str:
    n, whole, share = side.get(count), side.get("requests"), side.get(rate)
    if share is None and isinstance(n, int) and isinstance(whole, int) and whole > 0:
        share = n / whole  # the SPEC's baseline has no origin_error_rate: derive it
    return f"{_num(n)} ({_pct(share)})"


def _quantiles(q: Any) -> str:
    if not isinstance(q, dict):
        return "-"
    values = [q.get(k) for k in ("p50", "p95", "p99")]
    if all(v is None for v in values):
        return "-"
    return " / ".join(_ms(v) for v in values) + " ms"


def _ms(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"
