"""Putting podtrace into workloads: `podtrace inject`, and the `podtrace webhook` admission webhook.

Both apply one mutation to a pod template (``mutate.inject_template``): the sidecar collector, the
downward-API environment and ``podinfo`` volume on every app container, the OTLP endpoint, and
optionally the ``podtrace run`` wrapper.  ``manifests`` walks YAML documents and kinds, ``patch``
turns the mutation into the JSON Patch an admission webhook answers with.
"""

from __future__ import annotations

from podtrace_collector.errors import InjectError, ManifestError
from podtrace_collector.inject.mutate import inject_template, remove_template
from podtrace_collector.inject.options import InjectOptions

__all__ = ["InjectError", "InjectOptions", "ManifestError", "inject_template", "remove_template"]
