"""podtrace: OpenTelemetry tracing with the pod's Kubernetes identity on every span.

import podtrace
podtrace.init()          # or, with no code change: podtrace run -- python app.py

The public names are imported on first use, so that ``podtrace run`` (which only launches the
program) does not pay for importing the OpenTelemetry SDK twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podtrace._configure import init
    from podtrace._export import ExportStats, stats
    from podtrace._k8s import KubernetesResourceDetector, detect_kubernetes_attributes

__version__ = "0.1.0"

__all__ = [
    "ExportStats",
    "KubernetesResourceDetector",
    "__version__",
    "detect_kubernetes_attributes",
    "init",
    "stats",
]

_HOMES = {
    "ExportStats": "podtrace._export",
    "KubernetesResourceDetector": "podtrace._k8s",
    "detect_kubernetes_attributes": "podtrace._k8s",
    "init": "podtrace._configure",
    "stats": "podtrace._export",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'podtrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
