"""Child processes: multiprocessing children deliver every span, under every start method."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import podtrace
from tests.library.otlp_receiver import OtlpReceiver

# The app calls init() at the top of its main module: a spawn or forkserver child re-imports that
# module (as __mp_main__), so it configures itself; a fork child inherits the parent's provider.
APP = """
import multiprocessing, os, sys
from concurrent.futures import ProcessPoolExecutor
from opentelemetry import trace
{init}

def work(i):
    with trace.get_tracer("app").start_as_current_span(f"task-{{i}}") as span:
        span.set_attribute("app.pid", os.getpid())
    return i

def child(n):
    for i in range(n):
        work(i)

if __name__ == "__main__":
    method, kind = sys.argv[1], sys.argv[2]
    ctx = multiprocessing.get_context(method)
    if kind == "pool":  # leaving the with block terminates the workers (SIGTERM)
        with ctx.Pool(2) as pool:
            assert sum(pool.map(work, range(100))) == 4950
    elif kind == "pool-maxtasks":  # workers leave through their normal exit after 5 chunks
        with ctx.Pool(2, maxtasksperchild=5) as pool:
            assert sum(pool.map(work, range(100), chunksize=5)) == 4950
    elif kind == "process":
        process = ctx.Process(target=child, args=(110,))
        process.start()
        process.join()
        assert process.exitcode == 0
    elif kind == "executor":
        with ProcessPoolExecutor(2, mp_context=ctx) as executor:
            assert sum(executor.map(work, range(100))) == 4950
    print("parent", os.getpid(), flush=True)
"""
INIT = 'import podtrace\npodtrace.init("mp", endpoint=os.environ["ENDPOINT"], instrument=False)'

METHODS = multiprocessing.get_all_start_methods()
EXPECTED = {"pool": 100, "pool-maxtasks": 100, "process": 110, "executor": 100}


def _run_app(
    tmp_path: Path, env: dict[str, str], argv: list[str], *, init: str = INIT, prefix: list[str]
) -> int:
    # These tests are about which exit paths flush, not how long a flush may take: a generous
    # bound (10 s per exit request) keeps a loaded machine's slow answers from dropping spans.
    # The exit timing itself is guarded in test_signals.py.
    env["PODTRACE_SHUTDOWN_TIMEOUT_S"] = "30"
    app = tmp_path / "mpapp.py"
    app.write_text(APP.format(init=init))
    proc = subprocess.run(
        [*prefix, sys.executable, str(app), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


def _assert_all_delivered(receiver: OtlpReceiver, expected: int, parent_pid: int) -> None:
    spans = receiver.wait_for(lambda s: len(s) >= expected, timeout_s=10)
    names = sorted(s.name for s in spans)
    assert len(names) == expected  # every span once: none lost, none exported twice
    assert set(names) == {f"task-{i}" for i in range(expected)}
    assert parent_pid not in {s.attributes["app.pid"] for s in spans}


@pytest.mark.parametrize("kind", ["pool", "pool-maxtasks", "process"])
@pytest.mark.parametrize("method", METHODS)
def test_multiprocessing_children_deliver_every_span(
    method: str, kind: str, receiver: OtlpReceiver, child_env: dict[str, str], tmp_path: Path
) -> None:
    """Pool workers (terminated or retired) and Process children flush before os._exit."""
    child_env["ENDPOINT"] = receiver.http_endpoint
    parent = _run_app(tmp_path, child_env, [method, kind], prefix=[])
    _assert_all_delivered(receiver, EXPECTED[kind], parent)


def test_process_pool_executor_delivers_every_span(
    receiver: OtlpReceiver, child_env: dict[str, str], tmp_path: Path
) -> None:
    """concurrent.futures' process pool runs on the same multiprocessing exit path."""
    child_env["ENDPOINT"] = receiver.http_endpoint
    parent = _run_app(tmp_path, child_env, [METHODS[0], "executor"], prefix=[])
    _assert_all_delivered(receiver, 100, parent)


@pytest.mark.parametrize("method", [m for m in ("spawn", "forkserver") if m in METHODS])
def test_podtrace_run_covers_fresh_interpreters(
    method: str, receiver: OtlpReceiver, child_env: dict[str, str], tmp_path: Path
) -> None:
    """Under podtrace run an app with no tracing code is traced in spawned workers too."""
    run = [sys.executable, "-m", "podtrace._cli", "run", "--no-instrument",
           "--endpoint", receiver.http_endpoint, "--"]  # fmt: skip
    parent = _run_app(tmp_path, child_env, [method, "pool"], init="", prefix=run)
    _assert_all_delivered(receiver, 100, parent)


def _blocks_sigterm(native_id: int) -> bool:
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    mask = int(next(x for x in status.splitlines() if x.startswith("SigBlk:")).split()[1], 16)
    return bool(mask & (1 << (signal.SIGTERM - 1)))


def _batch_worker() -> threading.Thread:
    (worker,) = [t for t in threading.enumerate() if t.name.startswith("OtelBatch")]
    return worker


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_only_the_main_thread_takes_sigterm(dead_port: int) -> None:
    """The batch worker blocks SIGTERM, in the process and in a forked child, and main does not.

    Otherwise the kernel may hand SIGTERM to the worker while the main thread waits in C (a Pool
    worker on its queue lock): the Python handler never runs and Pool.terminate() hangs.
    """
    podtrace.init("sig", endpoint=f"http://127.0.0.1:{dead_port}", instrument=False)
    worker = _batch_worker()
    assert worker.native_id is not None and _blocks_sigterm(worker.native_id)
    assert not _blocks_sigterm(threading.get_native_id())
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover  (the child reports through the pipe)
        child_worker = _batch_worker()
        ok = child_worker.native_id is not None and _blocks_sigterm(child_worker.native_id)
        os.write(write_end, b"%d %d" % (ok, _blocks_sigterm(threading.get_native_id())))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert report == b"1 0"  # the child's new worker blocks it; its main thread does not
    assert not _blocks_sigterm(threading.get_native_id())  # the parent's mask is restored


LOST_WAKEUP_APP = """
import multiprocessing, os, signal, sys, threading, time
from opentelemetry import trace
import podtrace
podtrace.init("lost", endpoint=os.environ["ENDPOINT"], instrument=False)

def child(lock):
    trace.get_tracer("app").start_span("before-the-wait").end()

    def aside():  # an app thread takes the signal, as the kernel may pick any thread
        time.sleep(0.3)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

    threading.Thread(target=aside, daemon=True).start()
    lock.acquire()  # held by the parent: the C-level wait of a Pool worker between tasks

if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    lock = ctx.Lock()
    lock.acquire()
    process = ctx.Process(target=child, args=(lock,))
    process.start()
    process.join(20)
    print(process.exitcode, flush=True)
    if process.exitcode is None:
        process.kill()
"""


@pytest.mark.parametrize("method", METHODS)
def test_sigterm_is_not_lost_while_a_child_waits_in_c(
    method: str, receiver: OtlpReceiver, child_env: dict[str, str], tmp_path: Path
) -> None:
    """A SIGTERM whose handler would wait forever is re-delivered: the child flushes and dies.

    Without that, the worker blocks in its lock wait for good and Pool.terminate() hangs.
    """
    app = tmp_path / "lost.py"
    app.write_text(LOST_WAKEUP_APP)
    child_env["ENDPOINT"] = receiver.http_endpoint
    proc = subprocess.run(
        [sys.executable, str(app), method], env=child_env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(-signal.SIGTERM)]  # ended by SIGTERM, not still waiting
    assert receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)[0].name == "before-the-wait"
