"""Enable every installed OpenTelemetry contrib instrumentation.

The same entry points and dependency checks as ``opentelemetry-instrument``
(``opentelemetry_instrumentor`` group, ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``), with one
difference: an instrumentor that fails for any reason is logged and skipped instead of aborting
the others, because the host app must keep running.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points

from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

from podtrace import environment_variables as envvars

logger = logging.getLogger(__name__)

GROUP = "opentelemetry_instrumentor"


def disabled_names() -> set[str]:
    """Entry-point names listed in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (``*`` = all)."""
    raw = envvars.get(envvars.OTEL_PYTHON_DISABLED_INSTRUMENTATIONS) or ""
    return {name.strip() for name in raw.split(",") if name.strip()}


def instrument_all() -> list[str]:
    """Instrument every installed library that has an instrumentor; return the names enabled."""
    disabled = disabled_names()
    if "*" in disabled:
        return []
    enabled = []
    for entry_point in entry_points(group=GROUP):
        if entry_point.name in disabled:
            continue
        if _instrument_one(entry_point):
            enabled.append(entry_point.name)
    return enabled


def _instrument_one(entry_point: EntryPoint) -> bool:
    try:
        dist = entry_point.dist
        conflict = get_dist_dependency_conflicts(dist) if dist is not None else None
        if conflict is not None:
            # The instrumented library is absent or at an unsupported version: not an error.
            logger.debug("podtrace: skipping %s: %s", entry_point.name, conflict)
            return False
        instrumentor = entry_point.load()()
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            return True
        instrumentor.instrument(skip_dep_check=True)
    except ModuleNotFoundError as exc:
        logger.debug("podtrace: skipping %s: %s", entry_point.name, exc)
        return False
    except Exception:
        logger.warning(
            "podtrace: instrumenting %s failed; skipped", entry_point.name, exc_info=True
        )
        return False
    return True
