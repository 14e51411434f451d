"""The ``podtrace`` command: one entry point, one module per subcommand.

Subcommands are imported lazily so that ``podtrace run`` never pays for the collector's imports,
and a missing optional extra becomes a one-line hint rather than a traceback.  Output into a closed
pipe (``podtrace blast-radius ... | head -1``) ends the command quietly, as it ends a Unix tool.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, function, needs the collector extra, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str, bool, str]] = {
    "run": ("podtrace._run", "main", False, "run a Python program with tracing on, no code change"),
    "collector": ("podtrace_collector.cli", "main", True, "run the OTLP collector"),
    "blast-radius": (
        "podtrace._query",
        "main",
        False,
        "print the blast radius of a workload's rollout",
    ),
    "demo": ("podtrace_collector.demo", "main", True, "run the example shop and a bad rollout"),
    "inject": (
        "podtrace_collector.inject.cli",
        "inject_main",
        True,
        "add the podtrace sidecar to Kubernetes manifests",
    ),
    "webhook": (
        "podtrace_collector.inject.cli",
        "webhook_main",
        True,
        "serve the admission webhook that adds podtrace to pods",
    ),
}

EXTRA_HINT = (
    'podtrace: the "{cmd}" command needs the collector extra: pip install "podtrace[collector]"'
)


def _usage() -> str:
    lines = ["usage: podtrace <command> [options]", "", "commands:"]
    for name, (_, _, _, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<14}{text}")
    lines.append("")
    lines.append("Run `podtrace <command> --help` for a command's options.")
    return "\n".join(lines)


EXIT_USAGE = 2
# What a shell reports for a program killed by SIGPIPE (128 + 13), as `yes | head -1` does.
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``podtrace <command> ...``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            return _dispatch(args)
        finally:
            # Flush here, not at interpreter exit, so that a closed pipe is caught below.
            sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _dispatch(args: list[str]) -> int:
    if not args:
        print(_usage(), file=sys.stderr)
        return EXIT_USAGE
    if args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    if args[0] in {"-V", "--version"}:
        from podtrace import __version__

        print(f"podtrace {__version__}")
        return 0
    cmd, rest = args[0], args[1:]
    if cmd not in SUBCOMMANDS:
        print(f"podtrace: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return EXIT_USAGE
    module_name, func_name, needs_extra, _ = SUBCOMMANDS[cmd]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if needs_extra and _is_missing_extra(exc):
            print(EXTRA_HINT.format(cmd=cmd), file=sys.stderr)
            return 2
        raise
    func: Callable[[list[str]], int] = getattr(module, func_name)
    try:
        return func(rest)
    except KeyboardInterrupt:
        return 130
    except ImportError as exc:  # subcommands import their heavy dependencies lazily
        if needs_extra and _is_missing_extra(exc):
            print(EXTRA_HINT.format(cmd=cmd), file=sys.stderr)
            return 2
        raise


def _discard_stdout() -> None:
    # The reader is gone: what is still buffered must not raise again when Python exits.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _is_missing_extra(exc: ImportError) -> bool:
    missing = (exc.name or "").split(".")[0]
    extra = {"fastapi", "uvicorn", "grpc", "httpx", "prometheus_client", "starlette", "yaml"}
    return missing in extra or (missing == "opentelemetry" and "proto" in (exc.name or ""))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
