"""``podtrace run -- <command> ...``: run a Python program with tracing on, no code change.

The standard mechanism, as ``opentelemetry-instrument`` uses it: a directory holding a
``sitecustomize`` module goes first on ``PYTHONPATH``; every Python interpreter started with that
environment (the command, and processes it spawns) imports it at start-up and calls
:func:`podtrace.init`. The flags become the standard ``OTEL_*`` variables for the child, so
what the child sees is exactly what it would see configured by hand. Then the command is exec'd:
same pid, same signals, same exit status.

Before the exec, what would make the program run untraced without a word is refused with one
clear message: an endpoint that is not an http(s) URL (exit status 2), and a command whose Python
cannot import podtrace (exit status 125; see :mod:`podtrace._interpreter`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping

from podtrace import _endpoints, _interpreter
from podtrace import environment_variables as envvars
from podtrace._exporters import GRPC, resolve_protocol

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
        "--endpoint",
        help="OTLP endpoint URL, or HOST:PORT for plaintext "
        "(default http://localhost:4318, grpc localhost:4317)",
    )
    parser.add_argument(
        "--no-instrument",
        action="store_true",
        help="enable no contrib instrumentation (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=*)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    return parser


def child_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the command runs with: bootstrap on PYTHONPATH, flags as OTEL_* vars.

    Raises:
        EndpointError: ``--endpoint``, or for OTLP/HTTP the standard endpoint variable, is not
            an http(s) URL (or ``HOST:PORT``).
    """
    env = dict(environ)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *parts])
    env[envvars.PODTRACE_BOOTSTRAP] = "1"
    if args.service_name:
        env[envvars.OTEL_SERVICE_NAME] = args.service_name
    if args.protocol:
        env[envvars.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL] = args.protocol
    protocol = resolve_protocol(args.protocol, env)
    if args.endpoint:
        check = _endpoints.grpc_target if protocol == GRPC else _endpoints.http_traces_url
        env[envvars.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT] = check(args.endpoint, what="--endpoint")
    elif protocol != GRPC:
        _endpoints.http_from_environment(env)  # a bare HOST:PORT is fixed (and said) in the child
    if args.no_instrument:
        env[envvars.OTEL_PYTHON_DISABLED_INSTRUMENTATIONS] = "*"
    return env


def main(argv: list[str]) -> int:
    """Parse ``argv`` and exec the command; returns only when it refuses to (2, 125 or 127)."""
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
    try:
        env = child_environment(args, os.environ)
    except _endpoints.EndpointError as exc:
        print(f"podtrace run: {exc}", file=sys.stderr)
        return 2
    python = _interpreter.command_python(executable, os.environ.get("PATH"))
    if python is not None and _interpreter.cannot_import_podtrace(python, os.environ):
        print(_interpreter.advice(command[0], python), file=sys.stderr)
        return 125
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, command, env)
    return 0  # pragma: no cover  (execve does not return)
