"""Child processes: a forked child gets a working provider; multiprocessing children flush.

After ``os.fork`` the SDK's BatchSpanProcessor restarts its worker thread in the child by itself
(SDK 1.45, ``os.register_at_fork``), the export counters restart at zero
(:mod:`podtrace._export`), the child opens its own connections on its first export
(:class:`podtrace._export.CountingExporter`), and the TracerProvider re-runs process-dependent
detectors, which replaces ``service.instance.id`` with a fresh random UUID: the after-fork hook
here puts back podtrace's policy value for the child's pid
(:func:`podtrace._k8s.service_instance_id`). SIGTERM is held across the fork so that the worker
thread the SDK starts in the child blocks it, as :mod:`podtrace._signals` requires.

``multiprocessing`` children end through ``os._exit``, which skips atexit, so their buffered
spans would be lost. Before that, every child (fork, spawn or forkserver: ``Process``, ``Pool``
workers, ``ProcessPoolExecutor`` workers) runs ``multiprocessing.util._exit_function``, which
calls the finalizers registered in that process; a fork or forkserver child clears the ones it
inherited, then runs the ``register_after_fork`` callbacks. podtrace registers one there that
adds a ``Finalize`` running the exit flush (a spawn child, which runs no such callbacks, adds it
when it calls ``init()``), with the lowest priority so it runs after the app's own
finalizers and after daemonic grandchildren are stopped. A child stopped by SIGTERM
(``Pool.terminate()``) flushes in podtrace's SIGTERM handler; :mod:`podtrace._lost_signal`
makes sure that handler runs even when the signal lands while the worker waits for a task.
"""

from __future__ import annotations

import multiprocessing.process
import multiprocessing.util
import os
import sys
import threading
from collections.abc import Callable

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider

from podtrace import _lost_signal
from podtrace._k8s import SERVICE_INSTANCE_ID, cached_attributes
from podtrace._k8s import service_instance_id as _instance_id_policy
from podtrace._signals import fatal_handler_pending, hold_sigterm, release_sigterm

# Finalizers run highest priority first; ours runs after everything the app registered.
_EXIT_PRIORITY = -1_000


def install(provider: TracerProvider, flush: Callable[[], None]) -> None:
    """Register the after-fork hooks and the multiprocessing exit flush for ``provider``."""
    _hold_sigterm_across_fork()
    _register_instance_id_hook(provider)
    # Called in each fork or forkserver child, once it has dropped the finalizers it inherited.
    multiprocessing.util.register_after_fork(flush, _in_child)
    if multiprocessing.process.parent_process() is not None or _spawned_child():
        _in_child(flush)  # init() ran inside a child, after that point, or in a spawned one


def _spawned_child() -> bool:
    # A spawn child runs no after-fork callbacks. It calls init() while it imports the parent's
    # main module, which multiprocessing imports under the name __mp_main__ (not __main__).
    return "__mp_main__" in sys.modules


def _in_child(flush: Callable[[], None]) -> None:
    multiprocessing.util.Finalize(None, flush, exitpriority=_EXIT_PRIORITY)
    if fatal_handler_pending():  # a Pool worker must not outlive Pool.terminate()
        _lost_signal.watch()


_fork_masks = threading.local()


def _hold_sigterm_across_fork() -> None:
    # Registered after the batch processor's own hook, so the child releases after the SDK
    # has restarted the worker thread. A stack: with several registrations, "before" hooks run
    # in reverse order and "after" hooks in order, so the first mask saved is restored last.
    def before() -> None:
        _stack().append(hold_sigterm())

    def after() -> None:
        stack = _stack()
        if stack:
            release_sigterm(stack.pop())

    os.register_at_fork(before=before, after_in_parent=after, after_in_child=after)


def _stack() -> list[set[int] | None]:
    stack: list[set[int] | None] | None = getattr(_fork_masks, "stack", None)
    if stack is None:
        stack = _fork_masks.stack = []
    return stack


def _register_instance_id_hook(provider: TracerProvider) -> None:
    explicit = OTELResourceDetector().detect().attributes.get(SERVICE_INSTANCE_ID)

    def after_in_child() -> None:
        instance = explicit or _instance_id_policy(cached_attributes(), os.getpid())
        update = getattr(provider, "_update_resource", None)
        if instance is not None and callable(update):
            try:
                update(Resource({SERVICE_INSTANCE_ID: str(instance)}))
            except Exception:
                pass  # keep the SDK's fresh UUID: still distinct per process

    os.register_at_fork(after_in_child=after_in_child)
