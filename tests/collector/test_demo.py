"""``podtrace demo``: the whole product end to end, and the pieces that make its pods look real.

The end-to-end test runs ``podtrace demo --fast`` exactly as ``make demo`` runs it (real collector
processes, the shop under ``podtrace run``, real sockets and SQLite) and checks what it prints,
what it reports and that it leaves no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from podtrace_collector.demo import _main, _setup
from podtrace_collector.demo._cluster import clean_environ
from podtrace_collector.demo._pods import Pod, Revision, template_hash
from podtrace_collector.demo._procs import Supervisor, wait_ready
from podtrace_collector.demo._rollout import SHOP, SLOW, bad_revision
from podtrace_collector.demo._setup import gateway_ports
from podtrace_collector.errors import DemoError

from podtrace import _k8s

SAFE = "bcdfghjklmnpqrstvwxz2456789"
DEMO = [sys.executable, "-m", "podtrace._cli", "demo"]


def _processes_under(root: Path) -> list[str]:
    """Command lines of live processes whose working directory is inside *root*."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = (proc / "cwd").resolve(strict=True)
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd == root.resolve() or root.resolve() in cwd.parents:
            found.append(f"{proc.name}: {cmdline}")
    return found


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The process's output lines as they come (None at the end), read by a thread."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _until(lines: queue.Queue[str | None], marker: str, timeout_s: float) -> str:
    """Everything read up to and including the line holding *marker*."""
    out, deadline = [], time.monotonic() + timeout_s
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            raise AssertionError(f"the demo ended before {marker!r}:\n{''.join(out)}")
        out.append(line)
        if marker in line:
            return "".join(out)


@pytest.mark.slow
def test_fast_demo_reports_both_rollouts_and_stays_up(tmp_path: Path) -> None:
    """`podtrace demo --fast` reports shop/payment regressed by its failures, 2 hops to the
    frontend, and shop/shipping regressed by its own time, which slowed checkout and the entry
    point above it; then the printed page and commands answer until Ctrl-C, which ends it with
    exit 0 and no process left."""
    report_path = tmp_path / "report.json"
    workdir = tmp_path / "work"
    command = [*DEMO, "--fast", "--workdir", str(workdir), "--seed", "3"]
    command += ["--api-port", "0", "--report-json", str(report_path)]
    started = time.monotonic()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    lines = _lines(proc)
    try:
        out = _until(lines, "press Ctrl-C to stop", timeout_s=180)
        took = time.monotonic() - started
        for progress in (
            "gateway ready",
            "pods ready",
            "rolling update shop/payment",
            "rolling update shop/shipping",
            "canary",
        ):
            assert progress in out
        failing_out, slow_out = out.split("== The slow rollout", 1)
        assert re.search(r"shop/payment\s+revision\s+\w+", failing_out)
        assert "REGRESSED" in failing_out
        assert re.search(r"1\s+shop/checkout\s+checkout", failing_out)
        assert re.search(r"2\s+shop/frontend\s+frontend", failing_out)
        assert re.search(r"shop/shipping\s+revision\s+\w+", slow_out)
        slowed = slow_out.split("Slowed (critical path)\n", 1)[1]
        assert re.search(r"shop/frontend\s+POST /checkout\s+2\s", slowed)
        assert re.search(r"shop/checkout\s+1\s", slowed)
        report, slow = json.loads(report_path.read_text())
        # What the demo printed works when read: the page, and the same table from the CLI.
        url = re.search(r"^web page:\s+(\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and "text/html" in page.headers["content-type"]
        same = re.findall(r"^same table:\s+(.+)$", out, re.MULTILINE)
        assert len(same) == 2
        for command, printed in zip(same, (report, slow), strict=True):
            table = subprocess.run(
                shlex.split(command), capture_output=True, text=True, timeout=60, cwd=tmp_path
            )
            assert table.returncode == 0, table.stderr
            assert f"{printed['workload']}  revision {printed['revision']}" in table.stdout
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        while lines.get(timeout=10) is not None:
            pass  # the reader reached the end and closed the pipe
    assert _processes_under(workdir) == []
    assert (report["workload"], report["verdict"]) == ("shop/payment", "regressed")
    assert report["baseline"]["revision"] != report["revision"]
    hops = {a["workload"]: a["hops"] for a in report["affected_services"]}
    assert hops == {"shop/checkout": 1, "shop/frontend": 2}
    entry = {(e["workload"], e["operation"]) for e in report["entrypoints"]}
    assert entry == {("shop/frontend", "POST /checkout")}
    assert report["affected_users"] >= 1
    assert report["origin_errors"] > report["baseline"]["origin_errors"]
    assert report["latency_impact"] == {"entrypoints": [], "services": []}  # it only fails
    assert (slow["workload"], slow["verdict"]) == ("shop/shipping", "regressed")
    assert slow["reasons"][0].startswith("self time") and "in its own code" in slow["reasons"][0]
    assert slow["errors"] == 0 and slow["affected_services"] == []
    (entry,) = slow["latency_impact"]["entrypoints"]
    assert (entry["workload"], entry["operation"], entry["hops"]) == (
        "shop/frontend",
        "POST /checkout",
        2,
    )
    assert 40 <= entry["added_ms"]["p50"] <= 200  # 80 ms of work, on a busy machine
    hops = {s["workload"]: s["hops"] for s in slow["latency_impact"]["services"]}
    assert hops == {"shop/checkout": 1, "shop/frontend": 2}
    assert slow["max_hops"] == 2
    print(f"demo --fast reported after {took:.1f}s")


@pytest.mark.slow
def test_interrupt_stops_every_process(tmp_path: Path) -> None:
    """SIGINT while pods start (Ctrl-C) stops every process the demo started; exit code 130."""
    workdir = tmp_path / "work"
    command = [*DEMO, "--fast", "--workdir", str(workdir), "--api-port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "starting shop/frontend" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest
    assert _processes_under(workdir) == []


def test_template_hash_looks_like_kubernetes() -> None:
    """Hashes use Kubernetes' safe alphabet, are stable, and change with the pod template."""
    first = template_hash("shop/payment:1.4.0|")
    assert first == template_hash("shop/payment:1.4.0|")
    assert 6 <= len(first) <= 10 and set(first) <= set(SAFE)
    assert template_hash("shop/payment:1.5.0|") != first


def test_bad_revisions_are_new_versions_with_faults() -> None:
    """A bad revision bumps the minor version: the failing one fails half of its requests and is
    no slower, the slow one adds 80 ms and keeps the stable revision's failure rate."""
    payment = next(spec for spec in SHOP if spec.name == "payment")
    bad = bad_revision(payment)
    assert bad.version == "1.5.0"
    assert float(bad.env["SHOP_FAIL_RATE"]) == 0.5 and "SHOP_EXTRA_LATENCY_MS" not in bad.env
    assert bad.hash != payment.revision().hash
    slow = bad_revision(payment, SLOW)
    assert slow.env == {"SHOP_FAIL_RATE": "0.004", "SHOP_EXTRA_LATENCY_MS": "80"}
    assert slow.version == "1.5.0" and len({slow.hash, bad.hash, payment.revision().hash}) == 3


@pytest.fixture
def pod_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Pod]:
    """A simulated pod's files and variables, installed in this process's environment."""
    for name in list(os.environ):
        if name not in clean_environ(os.environ):
            monkeypatch.delenv(name)
    revision = Revision("payment", "1.4.0", {"SHOP_FAIL_RATE": "0.1"})
    pod = Pod.create(revision, port=1, rng=random.Random(5))
    pod_dir = pod.write_files(tmp_path)
    for name, value in pod.env(pod_dir, container="payment").items():
        monkeypatch.setenv(name, value)
    _k8s.clear_cache()
    yield pod
    _k8s.clear_cache()


def test_simulated_pod_is_detected_like_a_real_one(pod_environ: Pod) -> None:
    """The podtrace detector derives Deployment, ReplicaSet, service and container.id from it."""
    attrs = _k8s.detect_kubernetes_attributes()
    revision = pod_environ.revision
    assert re.fullmatch(rf"payment-[{SAFE}]{{6,10}}-[{SAFE}]{{5}}", pod_environ.name)
    assert attrs["k8s.pod.name"] == pod_environ.name
    assert attrs["k8s.pod.uid"] == pod_environ.uid
    assert attrs["k8s.namespace.name"] == "shop"
    assert attrs["k8s.node.name"] == pod_environ.node
    assert attrs["k8s.replicaset.name"] == f"payment-{revision.hash}"
    assert attrs["k8s.deployment.name"] == "payment"
    assert (attrs["service.name"], attrs["service.version"]) == ("payment", "1.4.0")
    assert attrs["k8s.container.name"] == "payment"
    assert re.fullmatch(r"[0-9a-f]{64}", str(attrs["container.id"]))


def test_stop_signals_the_whole_process_group(tmp_path: Path) -> None:
    """Stopping a process also stops the children it started in its group."""
    supervisor = Supervisor(tmp_path / "logs")
    process = supervisor.spawn(
        "parent",
        ["sh", "-c", "sleep 60 & echo child $!; wait"],
        env=dict(os.environ),
        cwd=tmp_path,
        tier=0,
    )
    deadline = time.monotonic() + 5
    while "child" not in process.tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(process.tail().split()[-1])
    supervisor.stop_all(timeout_s=2)
    assert not process.alive() and supervisor.processes == []
    time.sleep(0.1)
    assert _state(child) in {None, "Z"}  # gone, or dead and awaiting its reaper


def test_a_process_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    """A pod that exits before it is ready fails the demo with the end of its log."""
    supervisor = Supervisor(tmp_path / "logs")
    process = supervisor.spawn(
        "broken",
        ["sh", "-c", "echo 'ImportError: no module named shop' >&2; exit 3"],
        env=dict(os.environ),
        cwd=tmp_path,
        tier=0,
    )

    async def never() -> bool:
        return False

    with pytest.raises(
        DemoError, match=r"(?s)broken exited while starting.*exit code 3.*ImportError"
    ):
        asyncio.run(wait_ready(process, never, timeout_s=10))
    supervisor.stop_all()


def test_api_port_zero_takes_free_ports_throughout() -> None:
    """`--api-port 0` gives the gateway three distinct free ports, none of the standard ones."""
    ports = gateway_ports(0)
    assert sorted(ports) == ["api", "grpc", "http"]
    assert len(set(ports.values())) == 3
    assert not set(ports.values()) & {4317, 4318, 4320}


def test_pods_do_not_inherit_the_shell_identity() -> None:
    """OTEL_*, PODTRACE_* and downward-API names from the shell never reach a simulated pod."""
    shell = {"PATH": "/bin", "OTEL_SERVICE_NAME": "x", "PODTRACE_STORE": "memory", "POD_NAME": "p"}
    assert clean_environ(shell) == {"PATH": "/bin"}


def test_the_two_rollouts_need_two_services(capsys: pytest.CaptureFixture[str]) -> None:
    """--service and --slow-service naming one service is a usage error, before anything runs."""
    with pytest.raises(SystemExit) as stopped:
        _main.main(["--service", "cart", "--slow-service", "cart"])
    assert stopped.value.code == 2
    assert "two different services" in capsys.readouterr().err


def test_a_reused_workdir_starts_from_scratch(tmp_path: Path) -> None:
    """Databases, pod files and logs of an earlier run are cleared; anything else is kept."""
    for name in ("podtrace.db", "podtrace.db-wal", "cart.db", "queue.db", "notes.txt"):
        (tmp_path / name).write_text("x")
    for name in ("endpoints", "pods", "logs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("x")
    _main._clear(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_only_a_process_dying_on_its_own_is_reported(tmp_path: Path) -> None:
    """A crashed pod fails the demo; one being stopped (a rolling update) does not."""
    supervisor = Supervisor(tmp_path / "logs")
    env, cwd = dict(os.environ), tmp_path
    crashed = supervisor.spawn("crashed", ["sh", "-c", "exit 1"], env=env, cwd=cwd, tier=0)
    stopped = supervisor.spawn("stopped", ["sleep", "30"], env=env, cwd=cwd, tier=0)
    crashed.popen.wait()
    stopped.stopping = True  # what Supervisor.stop marks before signalling
    stopped.popen.terminate()
    stopped.popen.wait()
    with pytest.raises(DemoError, match="crashed exited unexpectedly"):
        supervisor.check_alive()
    supervisor.processes.remove(crashed)
    supervisor.check_alive()
    supervisor.stop_all()


def _port_in_time_wait() -> int:
    """A loopback port whose only trace is a connection in TIME_WAIT (nobody listens on it)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = int(server.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the side that closes first holds the TIME_WAIT, on the port
        client.close()
    return port


def test_a_port_in_time_wait_is_still_the_preferred_port() -> None:
    """A port the last demo left in TIME_WAIT is free for the gateway (which binds with
    SO_REUSEADDR): the demo keeps it instead of picking a random one."""
    port = _port_in_time_wait()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # what the probe met before it set SO_REUSEADDR
    assert _setup._preferred_port(port, set()) == port


def test_a_listened_port_is_not_preferred() -> None:
    """A port someone listens on is not taken: the demo picks a free one."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = int(busy.getsockname()[1])
        assert _setup._preferred_port(port, set()) != port


@pytest.mark.parametrize("keep_running", [True, False])
def test_the_printed_url_and_command_are_live_only_while_the_demo_is(
    keep_running: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """The page URL and the CLI command are printed when the demo stays up, and the command
    names this installation's podtrace, runnable as printed; --exit-after-report prints neither."""
    targets = [spec for spec in SHOP if spec.name in ("payment", "shipping")]
    _main._print_where("http://127.0.0.1:1", targets, keep_running=keep_running)
    out = capsys.readouterr().out
    assert ("web page:    http://127.0.0.1:1/" in out) is keep_running
    for name in ("payment", "shipping"):
        line = rf"^same table:\s+(.+) blast-radius shop/{name} --api http://127.0.0.1:1$"
        assert (re.search(line, out, re.MULTILINE) is not None) is keep_running
    same = re.search(r"^same table:\s+(.+) blast-radius shop/payment", out, re.MULTILINE)
    if same is not None:
        version = subprocess.run([*shlex.split(same.group(1)), "--version"],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
        assert version.stdout.startswith("podtrace ")
    else:
        assert "--exit-after-report: the demo stops now" in out


def test_make_demo_installs_only_the_demo_extra() -> None:
    """`make demo` installs podtrace[demo], which holds every instrumentation the shop needs,
    and not the dev group (pytest, mypy, ruff)."""
    root = Path(__file__).resolve().parents[2]
    # --no-print-directory: under `make test` this make is nested and would print its directory.
    dry = subprocess.run(["make", "-n", "--no-print-directory", "demo", "VENV=/nonexistent-venv"],
                         cwd=root, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line]
    assert any('-e ".[demo]"' in line for line in installs), dry.stdout
    assert not any("--group" in line or "[collector]" in line for line in installs), installs
    assert dry.stdout.splitlines()[-1].endswith("/bin/podtrace demo")
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["demo"]  # fmt: skip
    listed = {re.split(r"[<>=~;\[ ]", req, maxsplit=1)[0] for req in extra}
    assert set(_setup._INSTRUMENTATIONS.values()) <= listed
    assert "podtrace" in listed  # with the collector extra: podtrace[collector]
