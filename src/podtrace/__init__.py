"""podtrace: OpenTelemetry tracing with the pod's Kubernetes identity on every span.

import podtrace
podtrace.init()          # or, with no code change: podtrace run -- python app.py
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
