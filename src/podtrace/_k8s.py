"""Kubernetes resource detection: the pod's identity as OpenTelemetry resource attributes.

Sources, highest precedence first (SPEC section 2); a later source only fills what is missing:

1. ``OTEL_RESOURCE_ATTRIBUTES`` / ``OTEL_SERVICE_NAME`` (explicit always wins).
2. Downward-API environment variables (:mod:`podtrace.environment_variables` lists the spellings).
3. The downward-API volume (``PODTRACE_PODINFO_DIR``, default ``/etc/podinfo``).
4. The service-account namespace file, cgroup and mountinfo, then the hostname as the pod name.
5. The Kubernetes API (``PODTRACE_K8S_API=1``), bounded by a 1 s deadline.

Derivations (replicaset, deployment, service name/version, ...) run last and never overwrite.
Detection never raises: a problem is logged once and the source skipped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource, ResourceDetector

from podtrace import _k8s_api
from podtrace import environment_variables as envvars
from podtrace._k8s_derive import (
    Attributes,
    annotation_attributes,
    derive_owners,
    derive_service,
    label_attributes,
)
from podtrace._k8s_files import parse_downward_map, read_proc_identity, read_text, read_value
from podtrace._log import warn_once

logger = logging.getLogger(__name__)

SERVICE_INSTANCE_ID = "service.instance.id"

# The attributes podtrace detects (SPEC section 2); k8s.pod.label.<key> comes on top.
KNOWN_ATTRIBUTES = frozenset(
    {
        "k8s.namespace.name",
        "k8s.pod.name",
        "k8s.pod.uid",
        "k8s.node.name",
        "k8s.container.name",
        "k8s.deployment.name",
        "k8s.replicaset.name",
        "k8s.statefulset.name",
        "k8s.daemonset.name",
        "k8s.job.name",
        "k8s.cronjob.name",
        "container.id",
        "container.image.name",
        "container.image.tags",
        "service.name",
        "service.version",
        SERVICE_INSTANCE_ID,
        "deployment.environment.name",
    }
)


def detect_kubernetes_attributes() -> dict[str, str | list[str]]:
    """Detect this pod's Kubernetes resource attributes from every source in precedence order.

    Pure in the sense that matters to callers: reads files, environment and (when enabled) the
    API, returns plain data, never raises. ``service.instance.id`` is only included when set
    explicitly; :func:`service_instance_id` computes the per-process value.

    Returns:
        Attribute name to value (``container.image.tags`` is a list); empty outside Kubernetes.
    """
    try:
        return _detect()
    except Exception as exc:  # detection must never break the host app
        warn_once(logger, "k8s-detect", "podtrace: Kubernetes detection failed, skipped: %r", exc)
        return {}


def service_instance_id(attributes: Mapping[str, str | list[str]], pid: int) -> str | None:
    """The ``service.instance.id`` policy: distinct per process, stable for the process's life.

    An explicit value wins. Otherwise ``<pod uid>/<container name>/<pid>`` (the namespace and pod
    name stand in for an unknown uid; an unknown container name is left out). The pid keeps
    prefork workers apart. Outside Kubernetes there is no podtrace value (None): the SDK's random
    UUID, which it regenerates after a fork, is used.
    """
    explicit = attributes.get(SERVICE_INSTANCE_ID)
    if isinstance(explicit, str) and explicit:
        return explicit
    uid, ns, pod = (
        attributes.get(k) for k in ("k8s.pod.uid", "k8s.namespace.name", "k8s.pod.name")
    )
    if isinstance(uid, str) and uid:
        head = uid
    elif isinstance(ns, str) and isinstance(pod, str) and ns and pod:
        head = f"{ns}/{pod}"
    else:
        return None
    container = attributes.get("k8s.container.name")
    middle = f"/{container}" if isinstance(container, str) and container else ""
    return f"{head}{middle}/{pid}"


class KubernetesResourceDetector(ResourceDetector):
    """OpenTelemetry resource detector (entry point ``podtrace_k8s``).

    The pod's attributes are detected once per process tree and cached: they do not change when
    a prefork server forks. ``service.instance.id`` is recomputed for the current pid, which is
    why the detector declares itself process dependent (the SDK re-runs it after a fork).
    """

    def detect(self) -> Resource:
        """Return the pod's attributes plus this process's ``service.instance.id``."""
        attributes = dict(cached_attributes())
        instance = service_instance_id(attributes, os.getpid())
        if instance is not None:
            attributes[SERVICE_INSTANCE_ID] = instance
        return Resource(attributes)

    def is_process_dependent(self) -> bool:
        """True: ``service.instance.id`` depends on the pid."""
        return True


_cache: dict[str, str | list[str]] | None = None
_cache_lock = threading.Lock()


def cached_attributes() -> dict[str, str | list[str]]:
    """:func:`detect_kubernetes_attributes`, computed once per process tree."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = detect_kubernetes_attributes()
        return _cache


def _reinit_after_fork() -> None:
    # A lock held by another thread at fork time would stay locked forever in the child.
    global _cache_lock
    _cache_lock = threading.Lock()


os.register_at_fork(after_in_child=_reinit_after_fork)


def clear_cache() -> None:
    """Forget the cached detection (tests, or after the environment changed)."""
    global _cache
    with _cache_lock:
        _cache = None


# --- the sources ---------------------------------------------------------------------------------


def _detect() -> Attributes:
    attrs: Attributes = {}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    explicit = _explicit()
    _fill(attrs, explicit)
    _fill(attrs, _from_env())
    _from_podinfo(attrs, labels, annotations)
    in_kubernetes = _from_filesystem(attrs)
    # CONTAINER_NAME and the like are too generic to prove a pod; these are not.
    pod_evidence = ("k8s.pod.name", "k8s.pod.uid", "k8s.namespace.name")
    if not in_kubernetes and not any(k in attrs for k in pod_evidence):
        return explicit
    image_tag = (
        _from_api(attrs, labels, annotations) if envvars.flag(envvars.PODTRACE_K8S_API) else None
    )
    host = _hostname()
    # With hostNetwork: true the hostname is the node's name, not the pod's.
    if "k8s.pod.name" not in attrs and host and host != attrs.get("k8s.node.name"):
        attrs["k8s.pod.name"] = host
    derive_owners(attrs, labels)
    derive_service(attrs, labels, annotations, image_tag)
    _fill(attrs, label_attributes(labels, envvars.get(envvars.PODTRACE_POD_LABELS)))
    return attrs


def _fill(attrs: Attributes, more: Mapping[str, str | list[str]]) -> None:
    for key, value in more.items():
        if value:
            attrs.setdefault(key, value)


def _explicit() -> Attributes:
    """The known attributes named in OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME."""
    out: Attributes = {}
    for item in (envvars.get(envvars.OTEL_RESOURCE_ATTRIBUTES) or "").split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and (key in KNOWN_ATTRIBUTES or key.startswith("k8s.pod.label.")):
            out[key] = unquote(value.strip())
    if service := envvars.get(envvars.OTEL_SERVICE_NAME):
        out["service.name"] = service
    return out


def _from_env() -> Attributes:
    pairs = {
        "k8s.pod.name": envvars.POD_NAME_VARS,
        "k8s.pod.uid": envvars.POD_UID_VARS,
        "k8s.node.name": envvars.NODE_NAME_VARS,
        "k8s.namespace.name": envvars.NAMESPACE_VARS,
        "k8s.container.name": envvars.CONTAINER_NAME_VARS,
    }
    return {key: value for key, names in pairs.items() if (value := envvars.first(names))}


def _from_podinfo(attrs: Attributes, labels: dict[str, str], annotations: dict[str, str]) -> None:
    root = Path(envvars.path(envvars.PODTRACE_PODINFO_DIR, envvars.DEFAULT_PODINFO_DIR))
    for file, key in (
        ("name", "k8s.pod.name"),
        ("namespace", "k8s.namespace.name"),
        ("uid", "k8s.pod.uid"),
    ):
        if value := read_value(root / file):
            attrs.setdefault(key, value)
    for file, target in (("labels", labels), ("annotations", annotations)):
        text = read_text(root / file)
        if text is None:
            continue
        parsed = parse_downward_map(text)
        if text.strip() and not parsed:
            warn_once(
                logger, f"podinfo-{file}", 'podtrace: %s is not in key="value" format', root / file
            )
        target.update(parsed)
    _fill(
        attrs,
        {k: v for k, v in annotation_attributes(annotations).items() if k != SERVICE_INSTANCE_ID},
    )


def _from_filesystem(attrs: Attributes) -> bool:
    """Namespace file, cgroup and mountinfo; returns whether this looks like a pod."""
    sa_dir = Path(
        envvars.path(envvars.PODTRACE_SERVICEACCOUNT_DIR, envvars.DEFAULT_SERVICEACCOUNT_DIR)
    )
    namespace = read_value(sa_dir / "namespace")
    if namespace:
        attrs.setdefault("k8s.namespace.name", namespace)
    proc = read_proc_identity(
        Path(envvars.path(envvars.PODTRACE_CGROUP_PATH, envvars.DEFAULT_CGROUP_PATH)),
        Path(envvars.path(envvars.PODTRACE_MOUNTINFO_PATH, envvars.DEFAULT_MOUNTINFO_PATH)),
    )
    _fill(
        attrs,
        {
            "k8s.pod.uid": proc.pod_uid or "",
            "container.id": proc.container_id or "",
            "k8s.container.name": proc.container_name or "",
        },
    )
    return bool(namespace or proc.pod_uid or envvars.get(envvars.KUBERNETES_SERVICE_HOST))


def _from_api(attrs: Attributes, labels: dict[str, str], annotations: dict[str, str]) -> str | None:
    namespace, pod = attrs.get("k8s.namespace.name"), attrs.get("k8s.pod.name") or _hostname()
    sa_dir = Path(
        envvars.path(envvars.PODTRACE_SERVICEACCOUNT_DIR, envvars.DEFAULT_SERVICEACCOUNT_DIR)
    )
    config = _k8s_api.config_from_env(sa_dir)
    if config is None or not isinstance(namespace, str) or not isinstance(pod, str) or not pod:
        warn_once(
            logger,
            "k8s-api-config",
            "podtrace: Kubernetes API lookup skipped: no API address or pod name",
        )
        return None
    container = attrs.get("k8s.container.name")
    try:
        facts = _k8s_api.lookup(
            config, namespace, pod, container if isinstance(container, str) else None
        )
    except _k8s_api.K8sApiError as exc:
        warn_once(logger, "k8s-api", "podtrace: Kubernetes API lookup skipped: %s", exc)
        return None
    _fill(attrs, facts.attributes)
    # Labels and annotations from the API only fill gaps left by the downward-API volume.
    for key, value in facts.labels.items():
        labels.setdefault(key, value)
    for key, value in facts.annotations.items():
        annotations.setdefault(key, value)
    _fill(
        attrs,
        {
            k: v
            for k, v in annotation_attributes(facts.annotations).items()
            if k != SERVICE_INSTANCE_ID
        },
    )
    return facts.image_tag


def _hostname() -> str | None:
    try:
        return envvars.get(envvars.PODTRACE_HOSTNAME) or socket.gethostname() or None
    except OSError:
        return None
