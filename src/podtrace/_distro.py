"""Hooks for the standard ``opentelemetry-instrument`` command.

With podtrace installed, ``opentelemetry-instrument python app.py`` loads :class:`PodtraceDistro`
(entry point group ``opentelemetry_distro``) and :class:`PodtraceConfigurator`
(``opentelemetry_configurator``). The configurator calls :func:`podtrace.init` without
instrumenting, because ``opentelemetry-instrument`` enables the instrumentations itself right
after; the result is the same provider, resource and exporter as ``podtrace run``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator


class PodtraceDistro(BaseDistro):  # type: ignore[misc]
    """The podtrace distro: defaults are applied by :func:`podtrace.init` itself."""

    def _configure(self, **kwargs: Any) -> None:
        # podtrace's defaults (protocol, endpoint, short timeout) live in init(); nothing to set
        # in the environment, so that the child processes' environment stays the user's.
        return None


class PodtraceConfigurator(_BaseConfigurator):
    """Configures tracing through :func:`podtrace.init` (instrumentation left to the caller)."""

    def _configure(self, **kwargs: Any) -> None:
        from podtrace import init

        init(instrument=False)
