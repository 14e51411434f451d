"""Exceptions of ``podtrace inject`` and ``podtrace webhook``.

InjectError        a pod template podtrace cannot be added to as asked (a port conflict, a bad
│                  annotation, a Job with a plain sidecar container): the user must decide
└── ManifestError  the input is not Kubernetes manifests (invalid YAML, not a mapping)
"""

from __future__ import annotations

from podtrace_collector.errors import CollectorError


class InjectError(CollectorError):
    """A pod template cannot be injected as asked; the message says why and what to do."""


class ManifestError(InjectError):
    """The input is not a stream of Kubernetes objects."""
