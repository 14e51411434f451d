"""Log a problem once per process: a library must not flood its host app's logs."""

from __future__ import annotations

import logging
import os
import threading

_seen: set[str] = set()
_lock = threading.Lock()


def warn_once(logger: logging.Logger, key: str, msg: str, *args: object) -> bool:
    """Log ``msg`` at WARNING the first time ``key`` is seen; return whether it was logged."""
    with _lock:
        if key in _seen:
            return False
        _seen.add(key)
    logger.warning(msg, *args)
    return True


def reset() -> None:
    """Forget what was logged (tests)."""
    with _lock:
        _seen.clear()


def _reinit_after_fork() -> None:
    # A lock held by another thread at fork time would stay locked forever in the child.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_reinit_after_fork)
