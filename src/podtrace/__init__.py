"""podtrace: OpenTelemetry tracing with the pod's Kubernetes identity on every span.

import podtrace
podtrace.init()          # or, with no code change: podtrace run -- python app.py
"""

from __future__ import annotations

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
