"""`podtrace run`: the child environment, zero-code start-up, prefork workers, clear refusals."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

import podtrace
from podtrace import _run
from tests.library.otlp_receiver import OtlpReceiver


def _args(*argv: str) -> argparse.Namespace:
    return _run._parser().parse_args(list(argv))


def test_child_environment_puts_bootstrap_first() -> None:
    """The bootstrap directory leads PYTHONPATH once; the app's entries are kept."""
    env = _run.child_environment(
        _args("--", "python"), {"PYTHONPATH": os.pathsep.join(["/app", _run.BOOTSTRAP_DIR])}
    )
    assert env["PYTHONPATH"].split(os.pathsep) == [_run.BOOTSTRAP_DIR, "/app"]
    assert env["PODTRACE_BOOTSTRAP"] == "1"
    assert (Path(_run.BOOTSTRAP_DIR) / "sitecustomize.py").is_file()


def test_flags_become_standard_variables() -> None:
    """--service-name, --protocol, --endpoint and --no-instrument map to OTEL_* variables."""
    env = _run.child_environment(
        _args(
            "--service-name", "cart", "--endpoint", "http://gw:4318", "--no-instrument", "--", "x"
        ),
        {},
    )
    assert env["OTEL_SERVICE_NAME"] == "cart"
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://gw:4318/v1/traces"
    assert env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] == "*"
    grpc = _run.child_environment(
        _args("--protocol", "grpc", "--endpoint", "gw:4317", "--", "x"), {}
    )
    assert grpc["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "grpc"
    assert grpc["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://gw:4317"


def test_usage_errors(capsys: object) -> None:
    """No command is exit 2; an unknown command is exit 127; both say why."""
    assert _run.main([]) == 2
    assert _run.main(["--", "no-such-command-podtrace"]) == 127
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "no command given" in err and "command not found" in err


def test_run_traces_a_python_program(receiver: OtlpReceiver, child_env: dict[str, str]) -> None:
    """A program with no tracing code exports spans with the pod's attributes, exit status kept."""
    child_env.update(POD_NAME="web-0", POD_NAMESPACE="shop", PYTHONPATH="/somewhere-else")
    code = (
        "from opentelemetry import trace\n"
        "with trace.get_tracer('app').start_as_current_span('job'): pass\n"
        "raise SystemExit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "podtrace._cli", "run", "--service-name", "batch",
         "--endpoint", receiver.http_endpoint, "--", sys.executable, "-c", code],
        env=child_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    (span,) = receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)
    assert span.name == "job"
    assert span.resource["service.name"] == "batch"
    assert (
        span.resource["k8s.statefulset.name"] if False else span.resource["k8s.pod.name"] == "web-0"
    )


WSGI_APP = """
import os
from opentelemetry import trace

def app(environ, start_response):
    with trace.get_tracer("wsgi").start_as_current_span("handle") as span:
        span.set_attribute("app.pid", os.getpid())
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_gunicorn_two_workers_distinct_instance_ids(
    receiver: OtlpReceiver, child_env: dict[str, str], tmp_path: Path, unused_port: int
) -> None:
    """gunicorn -w 2 under podtrace run: both workers export, each with its own instance id."""
    (tmp_path / "wsgiapp.py").write_text(WSGI_APP)
    port = unused_port
    # The default 5 s batch delay: spans are only exported when the workers stop, which checks
    # that a worker flushes on its way out (gunicorn replaces podtrace's SIGTERM handler in
    # workers; they leave through sys.exit, and the bounded atexit shutdown flushes).
    child_env.update(POD_NAME="web-7d9f8c6b5-x2k4p", POD_NAMESPACE="shop")
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    proc = subprocess.Popen(
        [sys.executable, "-m", "podtrace._cli", "run", "--endpoint", receiver.http_endpoint, "--",
         gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path), "wsgiapp:app"],
        env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        pids = _hit_until_two_workers(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    spans = receiver.wait_for(lambda s: len({x.attributes["app.pid"] for x in s}) >= 2, 2)
    by_pid = {s.attributes["app.pid"]: s.resource["service.instance.id"] for s in spans}
    assert set(by_pid) >= pids
    assert len(set(by_pid.values())) == len(by_pid)
    for pid, instance in by_pid.items():
        assert instance == f"shop/web-7d9f8c6b5-x2k4p/{pid}"
    assert {s.resource["k8s.deployment.name"] for s in spans} == {"web"}


def _hit_until_two_workers(port: int) -> set[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + 20
    while len(pids) < 2 and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                pids.add(int(r.read()))
        except OSError:
            time.sleep(0.1)
    assert len(pids) == 2, f"only saw workers {pids}"
    return pids


def test_apps_own_sitecustomize_still_runs(
    tmp_path: Path, child_env: dict[str, str], dead_port: int
) -> None:
    """A sitecustomize the app ships is chained, not shadowed, and tracing is on."""
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.APP_SITE = True\n")
    child_env["PYTHONPATH"] = str(tmp_path)
    code = (
        "import builtins\nfrom opentelemetry import trace\n"
        "print(builtins.APP_SITE, type(trace.get_tracer_provider()).__name__)"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "podtrace._cli", "run", "--no-instrument",
         "--endpoint", f"http://127.0.0.1:{dead_port}", "--", sys.executable, "-c", code],
        env=child_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "TracerProvider"]


# --- refusing what would run untraced or export nowhere -----------------------------------------

SPAN = (
    "from opentelemetry import trace\ntrace.get_tracer('app').start_span('job').end()\nprint('ran')"
)


def _podtrace_run(
    env: dict[str, str], *argv: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podtrace._cli", "run", *argv],
        env=env, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip


@pytest.fixture(scope="module")
def other_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python of another environment, without podtrace (as when podtrace came from pipx)."""
    root = tmp_path_factory.mktemp("other-env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    return root / "bin" / "python"


def _write_launchers(tmp_path: Path, other_python: Path) -> None:
    console = tmp_path / "bin" / "myapp"  # how pip writes console scripts (gunicorn, uvicorn…)
    console.parent.mkdir()
    console.write_text(f"#!{other_python}\nprint('ran')\n")
    via_env = tmp_path / "bin" / "envapp"
    via_env.write_text("#!/usr/bin/env python\nprint('ran')\n")
    for script in (console, via_env):
        script.chmod(0o755)


@pytest.mark.parametrize(
    "form", ["interpreter path", "python on PATH", "console script", "env shebang"]
)
def test_a_python_that_cannot_import_podtrace_is_refused(
    form: str, other_python: Path, child_env: dict[str, str], tmp_path: Path
) -> None:
    """Exit 125 before the program starts, saying which Python and what to install where."""
    _write_launchers(tmp_path, other_python)
    child_env["PATH"] = os.pathsep.join([str(tmp_path / "bin"), str(other_python.parent),
                                         child_env["PATH"]])  # fmt: skip
    command = {
        "interpreter path": [str(other_python), "-c", "print('ran')"],
        "python on PATH": ["python", "-c", "print('ran')"],
        "console script": ["myapp"],
        "env shebang": ["envapp"],
    }[form]
    proc = _podtrace_run(child_env, "--", *command)
    assert proc.returncode == 125, proc.stderr
    assert proc.stdout == ""  # the program was not started
    assert "cannot import podtrace" in proc.stderr
    assert f"{other_python} -m pip install podtrace" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_another_python_that_can_import_podtrace_runs_traced(
    other_python: Path, receiver: OtlpReceiver, child_env: dict[str, str]
) -> None:
    """The check asks the other Python; when it can import podtrace, the program is traced."""
    child_env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(podtrace.__file__).parents[1]), sysconfig.get_paths()["purelib"]]
    )
    proc = _podtrace_run(
        child_env, "--endpoint", receiver.http_endpoint, "--", str(other_python), "-c", SPAN
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran"
    assert receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)[0].name == "job"


def test_a_command_not_visibly_python_runs_and_the_bootstrap_says_why(
    other_python: Path, child_env: dict[str, str], tmp_path: Path
) -> None:
    """A shell script is not checked; the other Python it starts says it runs untraced."""
    script = tmp_path / "start.sh"
    script.write_text(f"#!/bin/sh\nexec {other_python} -c \"print('ran')\"\n")
    script.chmod(0o755)
    proc = _podtrace_run(child_env, "--", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran"
    assert f"{other_python} cannot import podtrace, so this program runs without tracing" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_an_endpoint_without_scheme_is_http(
    receiver: OtlpReceiver, child_env: dict[str, str]
) -> None:
    """--endpoint 127.0.0.1:PORT over OTLP/HTTP exports (it used to fail every export)."""
    proc = _podtrace_run(
        child_env, "--endpoint", f"127.0.0.1:{receiver.http_port}", "--", sys.executable, "-c", SPAN
    )
    assert proc.returncode == 0, proc.stderr
    assert receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)[0].name == "job"


def test_a_variable_without_scheme_is_http_with_a_warning(
    receiver: OtlpReceiver, child_env: dict[str, str]
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT=HOST:PORT exports, and the child says what it used."""
    child_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"127.0.0.1:{receiver.http_port}"
    proc = _podtrace_run(child_env, "--", sys.executable, "-c", SPAN)
    assert proc.returncode == 0, proc.stderr
    assert receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)[0].name == "job"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT has no scheme" in proc.stderr
    assert f"http://127.0.0.1:{receiver.http_port}/v1/traces" in proc.stderr


@pytest.mark.parametrize(
    ("flags", "variables", "says"),
    [
        (["--endpoint", "ftp://gw:4318"], {}, "--endpoint 'ftp://gw:4318': the scheme must be"),
        (["--endpoint", "gw"], {}, "--endpoint 'gw' has no scheme"),
        (["--protocol", "grpc", "--endpoint", "gw:x"], {}, "--endpoint 'gw:x': the port"),
        ([], {"OTEL_EXPORTER_OTLP_ENDPOINT": "gw"}, "OTEL_EXPORTER_OTLP_ENDPOINT 'gw' has no"),
        ([], {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "tcp://gw:1"}, "OTEL_EXPORTER_OTLP_TRACES_"),
    ],
)
def test_an_unusable_endpoint_is_refused_before_the_program_starts(
    flags: list[str], variables: dict[str, str], says: str, child_env: dict[str, str]
) -> None:
    """Exit 2 with one line naming the flag or variable; the program does not run."""
    child_env.update(variables)
    proc = _podtrace_run(child_env, *flags, "--", sys.executable, "-c", "print('ran')")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("podtrace run: " + says), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
