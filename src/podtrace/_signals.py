"""Flushing on the way out: SIGTERM (the pod stop signal) and process exit, both bounded.

:class:`ExitFlush` is the one way out: it shuts the provider down once per process, quickly
(the last exports are not retried and wait at most a third of the bound each) and within the
bound. Interpreter exit (atexit), multiprocessing's exit path for its children (see
:mod:`podtrace._processes`) and a SIGTERM about to kill the process all call it; a SIGTERM that
arrives during it takes effect once it is over.

Kubernetes sends SIGTERM, waits ``terminationGracePeriodSeconds`` and then kills. Spans still in
the batch queue at that point are lost unless they are flushed first. The handler flushes within
a time bound, then does what would have happened without podtrace: it calls the previous Python
handler, or re-delivers SIGTERM with the default action so the exit status stays "killed by
SIGTERM". Servers that install their own SIGTERM handler later (gunicorn, uvicorn) replace this
one; they exit through ``sys.exit``, and the bounded atexit shutdown flushes instead.

A Python signal handler runs on the main thread, and only once the main thread is back in
Python. The kernel may hand a process-wide SIGTERM to any thread that does not block it; if a
helper thread takes it while the main thread waits in C (a multiprocessing Pool worker waiting
on its task queue's lock), the main thread is never woken and the process never ends. So every
thread podtrace starts (the batch processor's worker, the flush threads) blocks SIGTERM:
:func:`sigterm_held` around their creation, since a thread inherits its creator's mask.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from opentelemetry.sdk.trace import TracerProvider

from podtrace._export import CountingExporter

logger = logging.getLogger(__name__)

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


def hold_sigterm() -> set[int] | None:
    """Block SIGTERM on this thread; returns the mask to restore (None: not supported here)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})}


def release_sigterm(held: set[int] | None) -> None:
    """Restore the mask :func:`hold_sigterm` returned; a held SIGTERM is delivered now."""
    if held is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


@contextlib.contextmanager
def sigterm_held() -> Iterator[None]:
    """SIGTERM blocked on this thread (and on threads started meanwhile) inside the block."""
    held = hold_sigterm()
    try:
        yield
    finally:
        release_sigterm(held)


def run_bounded(func: Callable[[], object], timeout_s: float, name: str) -> bool:
    """Run ``func`` in a daemon thread and wait at most ``timeout_s``; True if it finished.

    The SDK's flush and shutdown do not honour their timeout arguments in every path, so the
    bound is enforced from outside: an unfinished daemon thread cannot hold the process up.
    """

    def target() -> None:
        try:
            func()
        except Exception as exc:
            logger.warning("podtrace: %s failed: %r", name, exc)

    thread = threading.Thread(target=target, name=f"podtrace-{name}", daemon=True)
    with sigterm_held():
        thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()


class ExitFlush:
    """Shut ``provider`` down within ``timeout_s``, once per process; callable, never raises.

    A SIGTERM that interrupts the flush (multiprocessing's ``Pool.terminate`` sends it to workers
    already on their way out) must not kill the process under it, and its handler must not wait
    for the flush either: it runs on the very thread the flush was called from, which may hold a
    lock of that call. So the handler hands what SIGTERM does to :meth:`then`, returns, and the
    flush carries it out once it is over.
    """

    def __init__(
        self, provider: TracerProvider, exporter: CountingExporter | None, timeout_s: float
    ) -> None:
        self.provider = provider
        self.exporter = exporter
        self.timeout_s = timeout_s
        self._pid = 0
        self._running_pid = 0
        self._then: Callable[[], object] | None = None

    @property
    def running(self) -> bool:
        """Whether this process is inside the flush (further up the main thread's stack)."""
        return self._running_pid == os.getpid()

    def then(self, action: Callable[[], object]) -> None:
        """Run ``action`` once the running flush is over."""
        self._then = action

    def __call__(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return  # already flushed: atexit after multiprocessing's exit path, say
        self._running_pid = pid  # first: from here on a SIGTERM defers to this call
        self._pid = pid
        try:
            run_bounded(self._shutdown, self.timeout_s, "shutdown")
        finally:
            self._running_pid = 0
            action, self._then = self._then, None
            if action is not None:
                action()

    def _shutdown(self) -> None:
        if self.exporter is not None:
            # A third of the bound per request: an export already in flight when exit began may
            # take one full export timeout, and the last batch still gets a chance.
            self.exporter.begin_exit(self.timeout_s / 3)
        self.provider.shutdown()


_registered: list[ExitFlush] = []


def install_atexit(flush: ExitFlush) -> None:
    """Run ``flush`` at interpreter exit."""
    atexit.register(flush)
    _registered.append(flush)


def uninstall_atexit_for_tests() -> None:
    """Forget every exit flush registered so far (tests configure many providers)."""
    while _registered:
        atexit.unregister(_registered.pop())


_fatal_handler: object = None  # podtrace's handler, when SIGTERM ends the process after it
_entered_pid = 0  # the process in which podtrace's handler last started


def fatal_handler_pending() -> bool:
    """Whether podtrace's SIGTERM handler, which ends the process, is in place and has not run.

    True only while SIGTERM would end the process through podtrace's handler (no app handler
    before or after it) and that handler has not started in this process.
    """
    return (
        _fatal_handler is not None
        and signal.getsignal(signal.SIGTERM) is _fatal_handler
        and _entered_pid != os.getpid()
    )


def install_sigterm(flush: ExitFlush) -> bool:
    """Flush on SIGTERM, then chain to the previous behaviour; False if not installable here.

    When SIGTERM is about to kill the process (no Python handler before ours), the flush is the
    exit flush; when an app handler follows, the app may go on working (a graceful drain), so the
    flush is an ordinary bounded one and the exporter keeps its retries.
    """
    if threading.current_thread() is not threading.main_thread():
        return False  # signal.signal only works from the main thread
    try:
        previous: _Handler = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        global _entered_pid
        _entered_pid = os.getpid()
        if flush.running:  # it interrupted the exit flush: finish that, then go on
            flush.then(lambda: _chain(previous, signum, frame))
            return
        if callable(previous) or previous == signal.SIG_IGN:
            run_bounded(lambda: flush.provider.force_flush(), flush.timeout_s, "flush")
        else:
            flush()
        _chain(previous, signum, frame)

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):
        return False
    global _fatal_handler
    _fatal_handler = None if callable(previous) or previous == signal.SIG_IGN else on_sigterm
    return True


def _chain(previous: _Handler, signum: int, frame: FrameType | None) -> None:
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        # Default action: restore it and re-deliver, so the process dies of SIGTERM as it would
        # have (exit status 143 / -15), after our flush.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
