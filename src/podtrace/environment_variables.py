"""Every environment variable the podtrace library reads, in one place.

Standard ``OTEL_*`` variables are read by the OpenTelemetry SDK and exporters themselves; the
ones podtrace consults directly are repeated here so that a reader sees the whole surface.
Every file the Kubernetes detector reads has a ``PODTRACE_*_PATH``/``_DIR`` override so that
tests (and unusual runtimes) can point it at a fake pod filesystem.
"""

from __future__ import annotations

import os

# --- podtrace's own switches -------------------------------------------------------------------

PODTRACE_PODINFO_DIR = "PODTRACE_PODINFO_DIR"
"""Directory of the downward-API volume (files ``labels``, ``annotations``, ``name``,
``namespace``, ``uid``). Default :data:`DEFAULT_PODINFO_DIR`."""

PODTRACE_K8S_API = "PODTRACE_K8S_API"
"""``1``/``true`` enables the optional Kubernetes API lookup (owner references, image, labels)."""

PODTRACE_K8S_API_URL = "PODTRACE_K8S_API_URL"
"""Base URL of the Kubernetes API server; default ``https://$KUBERNETES_SERVICE_HOST:$..._PORT``."""

PODTRACE_K8S_API_TIMEOUT_S = "PODTRACE_K8S_API_TIMEOUT_S"
"""Total time budget of the API lookup in seconds; clamped to at most 1.0."""

PODTRACE_SERVICEACCOUNT_DIR = "PODTRACE_SERVICEACCOUNT_DIR"
"""Directory holding the service-account ``namespace``, ``token`` and ``ca.crt`` files."""

PODTRACE_MOUNTINFO_PATH = "PODTRACE_MOUNTINFO_PATH"
"""Path of the process's mountinfo table; default ``/proc/self/mountinfo``."""

PODTRACE_CGROUP_PATH = "PODTRACE_CGROUP_PATH"
"""Path of the process's cgroup membership file; default ``/proc/self/cgroup``."""

PODTRACE_HOSTNAME = "PODTRACE_HOSTNAME"
"""Overrides the hostname used as the last-resort pod name (tests)."""

PODTRACE_POD_LABELS = "PODTRACE_POD_LABELS"
"""Opt-in ``k8s.pod.label.<key>`` attributes: a comma-separated list of label keys, or ``*``."""

PODTRACE_SHUTDOWN_TIMEOUT_S = "PODTRACE_SHUTDOWN_TIMEOUT_S"
"""Upper bound in seconds on flushing spans at exit or on SIGTERM; default 3."""

PODTRACE_BOOTSTRAP = "PODTRACE_BOOTSTRAP"
"""Set by ``podtrace run`` for the child: ``1`` makes the bootstrap sitecustomize call init()."""

# --- Kubernetes-provided ------------------------------------------------------------------------

KUBERNETES_SERVICE_HOST = "KUBERNETES_SERVICE_HOST"
KUBERNETES_SERVICE_PORT = "KUBERNETES_SERVICE_PORT"

# Downward-API environment spellings, in the order they are consulted (first set wins).
# The OpenTelemetry Operator's names come first, then the common hand-written ones.
POD_NAME_VARS = ("OTEL_RESOURCE_ATTRIBUTES_POD_NAME", "POD_NAME", "K8S_POD_NAME")
POD_UID_VARS = ("OTEL_RESOURCE_ATTRIBUTES_POD_UID", "POD_UID", "K8S_POD_UID")
NODE_NAME_VARS = ("OTEL_RESOURCE_ATTRIBUTES_NODE_NAME", "NODE_NAME", "K8S_NODE_NAME")
NAMESPACE_VARS = ("POD_NAMESPACE", "K8S_NAMESPACE", "K8S_NAMESPACE_NAME")
CONTAINER_NAME_VARS = ("CONTAINER_NAME", "K8S_CONTAINER_NAME")

# --- Standard OpenTelemetry variables podtrace consults itself -----------------------------------

OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"
OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
OTEL_RESOURCE_ATTRIBUTES = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
OTEL_EXPORTER_OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_EXPORTER_OTLP_TIMEOUT = "OTEL_EXPORTER_OTLP_TIMEOUT"
OTEL_EXPORTER_OTLP_TRACES_TIMEOUT = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"

# --- Defaults -------------------------------------------------------------------------------------

DEFAULT_PODINFO_DIR = "/etc/podinfo"
DEFAULT_SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_MOUNTINFO_PATH = "/proc/self/mountinfo"
DEFAULT_CGROUP_PATH = "/proc/self/cgroup"
DEFAULT_K8S_API_TIMEOUT_S = 1.0
DEFAULT_EXPORT_TIMEOUT_S = 2.0
DEFAULT_SHUTDOWN_TIMEOUT_S = 3.0


def get(name: str) -> str | None:
    """Return the variable's value with surrounding blanks removed, or None when unset/empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def first(names: tuple[str, ...]) -> str | None:
    """Return the value of the first set variable among ``names``."""
    for name in names:
        value = get(name)
        if value is not None:
            return value
    return None


def flag(name: str) -> bool:
    """Read a boolean switch: ``1``, ``true``, ``yes`` and ``on`` (any case) are true."""
    return (get(name) or "").lower() in {"1", "true", "yes", "on"}


def seconds(name: str, default: float) -> float:
    """Read a positive number of seconds; a malformed value falls back to ``default``."""
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 else default


def path(name: str, default: str) -> str:
    """Read a file-path override."""
    return get(name) or default
