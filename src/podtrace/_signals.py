"""Flushing on the way out: SIGTERM (the pod stop signal) and interpreter exit, both bounded.

Kubernetes sends SIGTERM, waits ``terminationGracePeriodSeconds`` and then kills. Spans still in
the batch queue at that point are lost unless they are flushed first. The handler flushes within
a time bound, then does what would have happened without podtrace: it calls the previous Python
handler, or re-delivers SIGTERM with the default action so the exit status stays "killed by
SIGTERM". Servers that install their own SIGTERM handler later (gunicorn, uvicorn) replace this
one; they exit through ``sys.exit``, and the bounded atexit shutdown flushes instead.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


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
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive()


def install_atexit(provider: TracerProvider, timeout_s: float) -> None:
    """Shut the provider down at interpreter exit, waiting at most ``timeout_s``."""
    atexit.register(run_bounded, provider.shutdown, timeout_s, "shutdown")


def install_sigterm(provider: TracerProvider, timeout_s: float) -> bool:
    """Flush on SIGTERM, then chain to the previous behaviour; False if not installable here."""
    if threading.current_thread() is not threading.main_thread():
        return False  # signal.signal only works from the main thread
    try:
        previous: _Handler = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        run_bounded(lambda: provider.force_flush(), timeout_s, "flush")
        _chain(previous, signum, frame)

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):
        return False
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
