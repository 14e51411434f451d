"""``podtrace run -- <command> ...``: run a Python program with tracing on, no code change.

The standard mechanism, as ``opentelemetry-instrument`` uses it: a directory holding a
``sitecustomize`` module goes first on ``PYTHONPATH``; every Python interpreter started with that
environment (the command, and processes it spawns) imports it at start-up and calls
:func:`podtrace.init`. The flags become the standard ``OTEL_*`` variables for the child, so
what the child sees is exactly what it would see configured by hand. Then the command is exec'd:
same pid, same signals, same exit status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping

from podtrace import _env
from podtrace._exporters import GRPC, grpc_endpoint, http_endpoint, resolve_protocol

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podtrace run",
        description="Run a Python program with OpenTelemetry tracing and Kubernetes attributes.",
        epilog="Example: podtrace run --service-name cart -- gunicorn -w 2 app:app",
    )
    parser.add_argument("--service-name", help="service.name (sets OTEL_SERVICE_NAME)")
    parser.add_argument("--protocol", choices=["http/protobuf", "grpc"], help="OTLP protocol")
    parser.add_argument(
        "--endpoint", help="OTLP endpoint (default http://localhost:4318, grpc localhost:4317)"
    )
    parser.add_argument(
        "--no-instrument",
        action="store_true",
        help="enable no contrib instrumentation (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=*)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    return parser


def child_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the command runs with: bootstrap on PYTHONPATH, flags as OTEL_* vars."""
    env = dict(environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *parts])
    env[_env.PODTRACE_BOOTSTRAP] = "1"
    if args.service_name:
        env[_env.OTEL_SERVICE_NAME] = args.service_name
    if args.protocol:
        env[_env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL] = args.protocol
    if args.endpoint:
        protocol = resolve_protocol(args.protocol, env)
        endpoint = (
            grpc_endpoint(args.endpoint) if protocol == GRPC else http_endpoint(args.endpoint)
        )
        env[_env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT] = endpoint
    if args.no_instrument:
        env[_env.OTEL_PYTHON_DISABLED_INSTRUMENTATIONS] = "*"
    return env


def main(argv: list[str]) -> int:
    """Parse ``argv`` and exec the command; returns only on a usage error (exit code 2/127)."""
    args = _parser().parse_args(argv)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print(
            "podtrace run: no command given (usage: podtrace run -- python app.py)", file=sys.stderr
        )
        return 2
    executable = shutil.which(command[0])
    if executable is None:
        print(f"podtrace run: command not found: {command[0]}", file=sys.stderr)
        return 127
    env = child_environment(args, os.environ)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, command, env)
    return 0  # pragma: no cover  (execve does not return)
