"""Deriving workload attributes from what is already known, without the Kubernetes API.

Pure functions over plain dicts. Each fills only attributes that are still missing, so facts
from a higher-precedence source (environment, downward API, API owner references) always win
over a guess made from a name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from podtrace.naming import (
    CONTROLLER_REVISION_HASH,
    OWNER_KEYS,
    POD_TEMPLATE_HASH,
    REVISION_LABELS,
    is_pod_suffix,
    is_template_hash,
    split_pod_name,
)

_ORDINAL = re.compile(r"^(.+)-(\d+)$")
# A CronJob's Job is named <cronjob>-<scheduled time in minutes since the epoch>.
_CRONJOB_JOB = re.compile(r"^(.+)-(\d{8,})$")

SERVICE_NAME_ANNOTATION = "resource.opentelemetry.io/service.name"
SERVICE_VERSION_ANNOTATION = "resource.opentelemetry.io/service.version"
RESOURCE_ANNOTATION_PREFIX = "resource.opentelemetry.io/"

Attributes = dict[str, str | list[str]]


def derive_owners(attrs: Attributes, labels: Mapping[str, str]) -> None:
    """Fill replicaset/deployment/statefulset/daemonset/job/cronjob names from labels and names."""
    pod = _str(attrs.get("k8s.pod.name"))
    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if job:
        attrs.setdefault("k8s.job.name", job)
    if "k8s.job.name" in attrs and (m := _CRONJOB_JOB.match(_str(attrs["k8s.job.name"]))):
        attrs.setdefault("k8s.cronjob.name", m.group(1))
    if pod and CONTROLLER_REVISION_HASH in labels:
        _derive_revisioned(attrs, labels, pod)
    if pod and not _has_controller(attrs) and not job:
        _derive_replicaset_from_pod(attrs, pod, labels.get(POD_TEMPLATE_HASH))
    if (rs := _str(attrs.get("k8s.replicaset.name"))) and "k8s.deployment.name" not in attrs:
        head, _, tail = rs.rpartition("-")
        if head and is_template_hash(tail):
            attrs["k8s.deployment.name"] = head


def _derive_revisioned(attrs: Attributes, labels: Mapping[str, str], pod: str) -> None:
    if "statefulset.kubernetes.io/pod-name" in labels or "apps.kubernetes.io/pod-index" in labels:
        if (m := _ORDINAL.match(pod)) and "k8s.daemonset.name" not in attrs:
            attrs.setdefault("k8s.statefulset.name", m.group(1))
    elif "pod-template-generation" in labels:
        head, _, tail = pod.rpartition("-")
        if head and is_pod_suffix(tail) and "k8s.statefulset.name" not in attrs:
            attrs.setdefault("k8s.daemonset.name", head)


def _derive_replicaset_from_pod(attrs: Attributes, pod: str, template_hash: str | None) -> None:
    head, _, suffix = pod.rpartition("-")
    if not head or not is_pod_suffix(suffix):
        return
    if template_hash is not None:
        if head.endswith("-" + template_hash):
            attrs.setdefault("k8s.replicaset.name", head)
        return
    if (parts := split_pod_name(pod)) is not None:
        attrs.setdefault("k8s.replicaset.name", "-".join(parts))


def _has_controller(attrs: Attributes) -> bool:
    keys = ("k8s.replicaset.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.job.name")
    return any(k in attrs for k in keys)


def derive_service(
    attrs: Attributes,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    image_tag: str | None,
) -> None:
    """Fill ``service.name`` and ``service.version`` in the order of the specification."""
    name = (
        annotations.get(SERVICE_NAME_ANNOTATION)
        or labels.get("app.kubernetes.io/instance")
        or labels.get("app.kubernetes.io/name")
        or _owner_name(attrs)
    )
    if name:
        attrs.setdefault("service.name", name)
    version = (
        annotations.get(SERVICE_VERSION_ANNOTATION)
        or labels.get("app.kubernetes.io/version")
        # "latest" says nothing about what is running; a rollout needs a real version.
        or (image_tag if image_tag and image_tag != "latest" else None)
    )
    if version:
        attrs.setdefault("service.version", version)


def _owner_name(attrs: Attributes) -> str | None:
    for key in OWNER_KEYS:
        if value := _str(attrs.get(key)):
            return value
    return None


def annotation_attributes(annotations: Mapping[str, str]) -> Attributes:
    """Resource attributes set by ``resource.opentelemetry.io/<key>`` annotations."""
    return {
        key[len(RESOURCE_ANNOTATION_PREFIX) :]: value
        for key, value in annotations.items()
        if key.startswith(RESOURCE_ANNOTATION_PREFIX) and len(key) > len(RESOURCE_ANNOTATION_PREFIX)
    }


def label_attributes(labels: Mapping[str, str], opt_in: str | None) -> Attributes:
    """``k8s.pod.label.<key>`` for the revision labels plus the opted-in keys (``*`` = all)."""
    wanted = {k.strip() for k in (opt_in or "").split(",") if k.strip()}
    return {
        f"k8s.pod.label.{key}": value
        for key, value in labels.items()
        if key in REVISION_LABELS or "*" in wanted or key in wanted
    }


def split_image(image: str) -> tuple[str, str | None]:
    """Split ``registry/repo:tag@sha256:...`` into (name, tag or None)."""
    ref = image.partition("@")[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :] or None
    return ref, None


def _str(value: str | list[str] | None) -> str:
    return value if isinstance(value, str) else ""
