"""``podtrace blast-radius``: ask the collector's query API what a rollout broke.

Standard library only (``urllib``), so it works without the collector extra.  Exit codes: 0 the
report was printed; 1 the API refused the query (unknown workload, bad parameter, wrong token);
2 a usage error; 3 the collector could not be reached or did not answer with JSON.

``--version`` alone prints podtrace's version, as in any tool; the service-version filter is
``--service-version V`` (the API's ``version`` parameter).  ``--version V`` with a value is still
read as ``--service-version V``, with a warning, so that older scripts keep working.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "render_report", "render_rollouts"]

DEFAULT_API = "http://localhost:4320"
API_ENV = "PODTRACE_API"
TOKEN_ENV = "PODTRACE_API_TOKEN"
TIMEOUT_S = 10.0

ROLLOUTS_LIMIT = 1000  # the API's largest page of /api/v1/rollouts

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
_PRINT_VERSION = "\0print"  # --version given without a value


class _Failure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="podtrace blast-radius",
        description="Print the blast radius of a workload's rollout: what it broke, how far"
        " away, for whom.",
    )
    p.add_argument(
        "workload",
        nargs="?",
        help="NAMESPACE/NAME of the workload (a bare NAME is looked up as a service name)",
    )
    p.add_argument("--revision", help="revision to judge (default: the newest)")
    p.add_argument("--baseline", help="revision to compare with (default: the one before)")
    p.add_argument(
        "--service-version",
        metavar="V",
        help="judge the newest revision with this service.version",
    )
    p.add_argument(
        "-V",
        "--version",
        nargs="?",
        const=_PRINT_VERSION,
        dest="legacy_version",
        metavar="V",
        help="print podtrace's version and exit (with a value: --service-version V, deprecated)",
    )
    p.add_argument("--since", help="window start: RFC 3339 or a duration back (15m, 2h)")
    p.add_argument("--until", help="window end: RFC 3339 or a duration back (default: now)")
    p.add_argument(
        "--api",
        default=os.environ.get(API_ENV) or DEFAULT_API,
        help=f"collector query API (default: ${API_ENV} or {DEFAULT_API})",
    )
    p.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"bearer token of the API (default: ${TOKEN_ENV})",
    )
    p.add_argument("--json", action="store_true", help="print the JSON as the API returns it")
    p.add_argument(
        "--list",
        action="store_true",
        help="list recent rollouts instead (only the given workload's, when one is given)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``podtrace blast-radius``; returns the exit code."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.legacy_version == _PRINT_VERSION:
        from podtrace import __version__

        print(f"podtrace {__version__}")
        return EXIT_OK
    if args.legacy_version is not None:
        print(
            "podtrace blast-radius: --version V is deprecated, use --service-version V",
            file=sys.stderr,
        )
        args.service_version = args.service_version or args.legacy_version
    problem = _usage_problem(args)
    if problem:
        print(f"podtrace blast-radius: {problem}", file=sys.stderr)
        return EXIT_USAGE
    path, params = _request(args)
    try:
        body = _get(args.api, path, params, args.token)
    except _Failure as exc:
        print(f"podtrace blast-radius: {exc}", file=sys.stderr)
        return exc.code
    if args.list and args.workload:
        body = {**body, "rollouts": _of_workload(body.get("rollouts"), args.workload)}
    if args.json:
        print(json.dumps(body, indent=2, ensure_ascii=False))
    elif args.list:
        print(render_rollouts(body, workload=args.workload))
    else:
        print(render_report(body))
    return EXIT_OK


def _usage_problem(args: argparse.Namespace) -> str | None:
    if not args.list:
        return None if args.workload else "give a workload (NAMESPACE/NAME) or --list"
    report_only = [
        f"--{name.replace('_', '-')}"
        for name in ("revision", "baseline", "service_version")
        if getattr(args, name) is not None
    ]
    return f"{', '.join(report_only)}: not used by --list" if report_only else None


def _request(args: argparse.Namespace) -> tuple[str, dict[str, str]]:
    window = {k: v for k, v in (("since", args.since), ("until", args.until)) if v is not None}
    if args.list:
        # The API lists every workload's rollouts: ask for as many as it gives, then filter.
        limit = {"limit": str(ROLLOUTS_LIMIT)} if args.workload else {}
        return "/api/v1/rollouts", {**window, **limit}
    params = {"workload" if "/" in args.workload else "service": args.workload}
    for name, value in (
        ("revision", args.revision),
        ("baseline", args.baseline),
        ("version", args.service_version),
    ):
        if value is not None:
            params[name] = value
    return "/api/v1/blast-radius", {**params, **window}


def _of_workload(rollouts: Any, workload: str) -> list[Any]:
    """The rollouts of *workload* (NAMESPACE/NAME, or a bare NAME in any namespace)."""

    def matches(row: dict[str, Any]) -> bool:
        name = str(row.get("workload", ""))
        return name == workload if "/" in workload else name.rpartition("/")[2] == workload

    return [r for r in _items(rollouts) if matches(r)]


def _get(api: str, path: str, params: dict[str, str], token: str | None) -> Any:
    base = api.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise _Failure(f"--api must be an http:// or https:// URL, not {api!r}", EXIT_USAGE)
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return _json(resp.read(), base)
    except urllib.error.HTTPError as exc:
        raise _Failure(_api_error(exc), EXIT_API) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Failure(
            f"cannot reach the collector at {base} ({reason}); is `podtrace collector` running?"
            f" (set --api or ${API_ENV})",
            EXIT_UNREACHABLE,
        ) from exc


def _json(raw: bytes, base: str) -> Any:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Failure(
            f"{base} did not answer with a JSON object: is it the query API?", EXIT_UNREACHABLE
        )
    return body


def _api_error(exc: urllib.error.HTTPError) -> str:
    try:
        err = json.loads(exc.read())["error"]
        return f"{err['message']} ({err['code']}, HTTP {exc.code})"
    except (ValueError, KeyError, TypeError, OSError):
        return f"the API answered HTTP {exc.code} {exc.reason}"


# --- rendering: pure functions from the API's JSON to text (the demo reuses them) ---------------


def render_report(report: dict[str, Any]) -> str:
    """A blast-radius report (the JSON of ``/api/v1/blast-radius``) as a readable table.

    Verdict first, then this revision against its baseline, affected services by hop distance,
    entry points, where failures were contained, affected traces and users, exemplar trace ids.
    Missing fields render as ``-``; the function never raises on a partial report.
    """
    parts = [
        _headline(report),
        _verdict(report),
        _comparison(report),
        _affected(report),
        _entrypoints(report),
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
        "USERS",
    ]
    return _table(head, rows, right={4, 5, 6, 7})


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
    title = f"Affected services (max {_num(hops)} hop{'' if hops == 1 else 's'})"
    if not rows:
        return f"{title}\n  none: no failure from this revision reached another service"
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
    lines = [f"Affected traces {_num(r.get('affected_traces'))}, affected users {users}"]
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
