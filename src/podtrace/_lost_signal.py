"""A SIGTERM whose Python handler never ran is delivered again, to the main thread.

CPython runs a Python signal handler on the main thread, the next time that thread runs Python
code. When the signal lands just before the main thread blocks in a C call that looks for
signals only when the call itself is interrupted (a multiprocessing lock: a ``Pool`` worker
waiting for its next task), or lands on another thread while it waits there, nothing interrupts
the wait: the handler never runs, and ``Pool.terminate()``, which sent the signal, waits for that
worker forever. Without a Python handler the default action would have killed it at once.

So in multiprocessing children, where that wait is where a worker spends its idle time, podtrace
watches: the C-level handler writes the number of every signal to the wakeup fd
(``signal.set_wakeup_fd``); a watcher thread reads it and, if podtrace's SIGTERM handler has not
started a moment later, sends SIGTERM again with ``signal.pthread_kill`` to the main thread,
which interrupts its wait. It acts only while podtrace's handler is the one in place and ends
the process (so a second delivery changes nothing), and only in a process with no wakeup fd of
its own (asyncio's, say): it leaves one that is there alone.
"""

from __future__ import annotations

import os
import signal
import threading
import time

from podtrace import _signals

GRACE_S = 0.25  # the handler normally starts within microseconds; this is for a busy machine
_TRIES = 4

# (pid, read fd, write fd) of the watcher: a forked child inherits the fds but not the thread.
_watcher: tuple[int, int, int] | None = None


def watch() -> bool:
    """Start the watcher for this process (from its main thread); False where it does not run."""
    global _watcher
    if not hasattr(signal, "pthread_kill") or not hasattr(signal, "set_wakeup_fd"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False  # set_wakeup_fd only works there
    if _watcher is not None and _watcher[0] == os.getpid():
        return True
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        _close(read_fd, write_fd)
        return False
    if previous != -1 and not _inherited(previous):
        signal.set_wakeup_fd(previous)  # the app's own: leave it alone
        _close(read_fd, write_fd)
        return False
    _forget_inherited()
    _watcher = (os.getpid(), read_fd, write_fd)
    thread = threading.Thread(
        target=_watch, args=(read_fd, threading.get_ident()), name="podtrace-sigterm", daemon=True
    )
    with _signals.sigterm_held():
        thread.start()
    return True


def _watch(read_fd: int, main_ident: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 512)
        except OSError:
            return
        if not data:
            return
        if int(signal.SIGTERM) not in data:
            continue
        for _ in range(_TRIES):
            time.sleep(GRACE_S)
            if not _signals.fatal_handler_pending():
                break
            try:
                signal.pthread_kill(main_ident, signal.SIGTERM)
            except (OSError, ValueError):
                return


def _inherited(fd: int) -> bool:
    return _watcher is not None and _watcher[0] != os.getpid() and _watcher[2] == fd


def _forget_inherited() -> None:
    # Our copies only: the parent's watcher keeps its own.
    global _watcher
    if _watcher is not None and _watcher[0] != os.getpid():
        _close(_watcher[1], _watcher[2])
        _watcher = None


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _after_fork_in_child() -> None:
    # A forked child inherits the wakeup fd, but not the thread reading it: its signals would
    # reach the parent's watcher. A multiprocessing child starts a watcher of its own later.
    if _watcher is None or _watcher[0] == os.getpid():
        return
    try:
        current = signal.set_wakeup_fd(-1)
        if current != _watcher[2]:
            signal.set_wakeup_fd(current)  # set by the app since: not ours to drop
    except (ValueError, OSError):
        return
    _forget_inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)
