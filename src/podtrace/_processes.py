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
calls the finalizers registered in that process; the child clears the ones it inherited, then
runs the ``register_after_fork`` callbacks. podtrace registers one there that adds a
``Finalize`` running the exit flush, with the lowest priority so it runs after the app's own
finalizers and after daemonic grandchildren are stopped.
"""

from __future__ import annotations

import multiprocessing.process
import multiprocessing.util
import os
import threading
from collections.abc import Callable

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider

from podtrace._k8s import SERVICE_INSTANCE_ID, cached_attributes
from podtrace._k8s import service_instance_id as _instance_id_policy
from podtrace._signals import hold_sigterm, release_sigterm

# Finalizers run highest priority first; ours runs after everything the app registered.
_EXIT_PRIORITY = -1_000


def install(provider: TracerProvider, flush: Callable[[], None]) -> None:
    """Register the after-fork hooks and the multiprocessing exit flush for ``provider``."""
    _hold_sigterm_across_fork()
    _register_instance_id_hook(provider)
    # Called in each multiprocessing child, once it has dropped the finalizers it inherited.
    multiprocessing.util.register_after_fork(flush, _flush_at_child_exit)
    if multiprocessing.process.parent_process() is not None:
        _flush_at_child_exit(flush)  # init() ran inside a child, after that point


def _flush_at_child_exit(flush: Callable[[], None]) -> None:
    multiprocessing.util.Finalize(None, flush, exitpriority=_EXIT_PRIORITY)


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
