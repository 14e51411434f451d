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

from podtrace.report import render_report, render_rollouts

__all__ = ["main"]

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

    rows = rollouts if isinstance(rollouts, list) else []
    return [r for r in rows if isinstance(r, dict) and matches(r)]


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
