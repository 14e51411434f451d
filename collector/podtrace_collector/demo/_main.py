"""``podtrace demo``: the example shop, two bad rollouts and their blast radius, on one machine.

One rollout fails (half of its requests), the other only slows (80 ms more in its own code);
both roll out at the same moment, each with a canary first, and each gets its report: the
failures' reach for the first, the latency blast radius (``latency_impact``) for the second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from podtrace_collector.demo._cluster import Cluster, Say, Users
from podtrace_collector.demo._pods import Revision
from podtrace_collector.demo._procs import Supervisor
from podtrace_collector.demo._report import wait_for_reports
from podtrace_collector.demo._rollout import (
    SHOP,
    SLOW,
    DeploymentSpec,
    bad_revision,
    rolling_update,
)
from podtrace_collector.demo._setup import (
    check_instrumentations,
    gateway_ports,
    shop_path,
    start_gateway,
)
from podtrace_collector.errors import DemoError


@dataclass(frozen=True)
class Plan:
    """How long each phase lasts and how busy the shop is."""

    baseline_s: float
    canary_s: float
    after_s: float
    sessions_per_s: float
    users: int
    trace_timeout_s: float
    progress_every_s: float
    settle_timeout_s: float


FULL = Plan(25, 20, 20, 5.0, 400, 3.0, 5.0, 30.0)
FAST = Plan(6, 5, 7, 6.0, 150, 2.0, 3.0, 20.0)


class Console:
    """Progress lines with the time since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.reported = False
        """Whether the report has been printed."""

    def say(self, message: str) -> None:
        """Print one progress line now."""
        print(f"[{time.monotonic() - self.started:5.1f}s] {message}", flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podtrace demo",
        description="Run the example shop on this machine, roll one service to a failing revision "
        "and another to a slow one at the same moment, print each rollout's blast radius, then "
        "keep the web page and the API up until Ctrl-C.",
    )
    after = parser.add_mutually_exclusive_group()
    after.add_argument(
        "--exit-after-report",
        action="store_true",
        help="stop once the report is printed (scripts, CI); by default the page and the API "
        "stay up, with light traffic, until Ctrl-C",
    )
    after.add_argument(
        "--keep-running", action="store_true", help="stay up after the report (the default)"
    )
    parser.add_argument("--fast", action="store_true", help="shorter phases (tests and CI)")
    parser.add_argument("--workdir", type=Path, help="keep logs, pod files and the database here")
    names = sorted(spec.name for spec in SHOP)
    parser.add_argument(
        "--service", choices=names, default="payment", help="what to roll out to a failing revision"
    )
    parser.add_argument(
        "--slow-service",
        choices=names,
        default="shipping",
        help="what to roll out, at the same moment, to a revision 80 ms slower in its own code",
    )
    parser.add_argument(
        "--api-port",
        type=int,
        help="the gateway's API port (default 4320); 0: free ports for the API and OTLP alike",
    )
    parser.add_argument("--seed", type=int, help="seed the demo's randomness")
    parser.add_argument(
        "--report-json",
        type=Path,
        metavar="PATH",
        help="also write the reports' JSON to PATH (a list: the failing rollout's, the slow one's)",
    )
    return parser


def main(argv: list[str]) -> int:
    """Run the demo; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.slow_service == args.service:
        parser.error("--service and --slow-service must name two different services")
    plan = FAST if args.fast else FULL
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="podtrace-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _clear(workdir)
    supervisor = Supervisor(workdir / "logs")
    console = Console()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    ok = False
    try:
        asyncio.run(_demo(args, plan, workdir, supervisor, console))
        ok = True
        return 0
    except KeyboardInterrupt:
        # After the report, Ctrl-C is how --keep-running ends: a normal exit.
        ok = console.reported
        if not ok:
            console.say("interrupted")
        return 0 if ok else 130
    except DemoError as exc:
        print(f"podtrace demo: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if supervisor.processes:
            count, started = len(supervisor.processes), time.monotonic()
            console.say(f"stopping {count} processes")
            supervisor.stop_all()
            console.say(f"stopped {count} processes in {time.monotonic() - started:.1f}s")
        signal.signal(signal.SIGTERM, previous)
        if args.workdir is None and ok:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"podtrace demo: logs kept in {workdir / 'logs'}", file=sys.stderr)


def _clear(workdir: Path) -> None:
    # A reused --workdir must not mix an earlier run into this one: revision hashes are the
    # same from run to run, so old spans would count towards the new report.
    for name in ("endpoints", "pods", "logs"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    for pattern in ("podtrace.db*", "cart.db*", "queue.db*"):
        for path in workdir.glob(pattern):
            path.unlink(missing_ok=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends the demo the way Ctrl-C does: through the cleanup path.
    raise KeyboardInterrupt


async def _demo(
    args: argparse.Namespace, plan: Plan, workdir: Path, supervisor: Supervisor, console: Console
) -> None:
    say = console.say
    rng = random.Random(args.seed)
    say(f"podtrace demo: work directory {workdir}")
    check_instrumentations()
    shop = shop_path()
    ports = gateway_ports(args.api_port)
    api = f"http://127.0.0.1:{ports['api']}"
    gateway_http = f"http://127.0.0.1:{ports['http']}"
    await start_gateway(supervisor, workdir, ports, trace_timeout_s=plan.trace_timeout_s, say=say)
    cluster = Cluster(
        supervisor,
        workdir,
        gateway_http=gateway_http,
        gateway_grpc=f"127.0.0.1:{ports['grpc']}",
        shop_path=shop,
        rng=rng,
    )
    cluster.ports.update(ports.values())
    try:
        await _start_shop(cluster, say)
        failing = next(spec for spec in SHOP if spec.name == args.service)
        slow = next(spec for spec in SHOP if spec.name == args.slow_service)
        rollouts = [(failing, bad_revision(failing)), (slow, bad_revision(slow, SLOW))]
        reports = await _run_rollouts(cluster, supervisor, rollouts, plan, api, say)
        keep_running = not args.exit_after_report
        if args.report_json is not None:
            args.report_json.write_text(json.dumps(reports, indent=2) + "\n")
        titles = [
            f"The failing rollout: shop/{failing.name} fails half of its requests",
            f"The slow rollout: shop/{slow.name} spends 80 ms more in its own code",
        ]
        for title, report in zip(titles, reports, strict=True):
            _print_report(title, report)
        _print_where(api, [failing, slow], keep_running=keep_running)
        console.reported = True
        if keep_running:
            await _stay_up(cluster, supervisor, say)
    finally:
        await cluster.close()


async def _start_shop(cluster: Cluster, say: Say) -> None:
    started = []
    for spec in SHOP:
        revision = spec.revision()
        pods = [cluster.start_pod(revision, sidecar=spec.sidecar) for _ in range(spec.replicas)]
        started.extend(pods)
        names = ", ".join(pod.name for pod, _ in pods)
        extra = " (+ podtrace sidecar)" if spec.sidecar else ""
        say(f"starting shop/{spec.name} v{spec.version}: {names}{extra}")
    took = await asyncio.gather(*(cluster.wait_ready(pod, process) for pod, process in started))
    for pod, process in started:
        cluster.add_endpoint(pod, process)
    say(f"{len(started)} pods ready (slowest {max(took):.1f}s)")


async def _run_rollouts(
    cluster: Cluster,
    supervisor: Supervisor,
    rollouts: list[tuple[DeploymentSpec, Revision]],
    plan: Plan,
    api: str,
    say: Say,
) -> list[dict[str, Any]]:
    """Roll every target to its new revision at the same moment; their reports, in order."""
    users = cluster.users(plan.users, sessions_per_s=plan.sessions_per_s)
    stop = asyncio.Event()
    say(f"traffic: {plan.users} users, about {plan.sessions_per_s:g} shopping sessions a second")
    traffic = asyncio.create_task(users.run(stop))
    progress = asyncio.create_task(_progress(users, supervisor, plan.progress_every_s, say))
    try:
        await _sleep_watching(plan.baseline_s, traffic)
        updates = [
            rolling_update(
                cluster, target.revision(), new, canary_s=plan.canary_s, say=say,
                sidecar=target.sidecar,
            )
            for target, new in rollouts
        ]  # fmt: skip
        await asyncio.gather(*updates)
        await _sleep_watching(plan.after_s, traffic)
        stop.set()
        await traffic
    finally:
        stop.set()
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
    say(f"traffic stopped: {users.counters.line()}")
    return await wait_for_reports(
        api,
        [(f"shop/{target.name}", new.hash) for target, new in rollouts],
        trace_timeout_s=plan.trace_timeout_s,
        timeout_s=plan.settle_timeout_s,
        say=say,
    )


async def _sleep_watching(seconds: float, traffic: asyncio.Task[None]) -> None:
    # Wake up early if the load generator crashed, so its exception surfaces now.
    await asyncio.wait([traffic], timeout=seconds)
    if traffic.done():
        traffic.result()


async def _progress(users: Users, supervisor: Supervisor, every_s: float, say: Say) -> None:
    last, last_at = 0, time.monotonic()
    while True:
        await asyncio.sleep(every_s)
        supervisor.check_alive()
        now, count = time.monotonic(), users.counters.requests
        say(f"traffic: {(count - last) / (now - last_at):.0f} req/s; {users.counters.line()}")
        last, last_at = count, now


def _print_report(title: str, report: dict[str, Any]) -> None:
    from podtrace.report import render_report

    print()
    print(f"== {title} ==")
    print()
    print(render_report(report))
    print(flush=True)


def _print_where(api: str, targets: list[DeploymentSpec], *, keep_running: bool) -> None:
    print()
    if keep_running:
        print(f"web page:    {api}/")
        for target in targets:
            command = f"{_podtrace_command()} blast-radius shop/{target.name} --api {api}"
            print(f"same table:  {command}")
    else:
        print("(--exit-after-report: the demo stops now; without it the page stays up)")
    print(flush=True)


def _podtrace_command() -> str:
    """How to run this installation's ``podtrace`` from the user's shell."""
    script = Path(sys.executable).parent / "podtrace"
    on_path = shutil.which("podtrace")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "podtrace"
    if not script.exists():
        return f"{sys.executable} -m podtrace"
    # `make demo` runs .venv/bin/podtrace: print the path as typed from the checkout.
    with contextlib.suppress(ValueError):
        return f"./{script.absolute().relative_to(Path.cwd())}"
    return str(script)


async def _stay_up(cluster: Cluster, supervisor: Supervisor, say: Say) -> None:
    say("the page and the API stay up, with light traffic; press Ctrl-C to stop")
    users = cluster.users(100, sessions_per_s=1.0)
    stop = asyncio.Event()
    traffic = asyncio.create_task(users.run(stop))
    try:
        while True:
            await _sleep_watching(5.0, traffic)
            supervisor.check_alive()
    finally:
        stop.set()
        traffic.cancel()
