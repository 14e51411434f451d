"""Workload and revision of a span, from its resource attributes (SPEC §4).

Rules, first match wins:

* **Deployment** — ``k8s.deployment.name``, or derived from ``k8s.replicaset.name``
  (``<deployment>-<hash>``) or from ``k8s.pod.name`` (``<deployment>-<hash>-<5 chars>``).  The
  revision is the pod-template-hash: the replicaset name's suffix after the deployment name, else
  the ``k8s.pod.label.pod-template-hash`` label, else the hash part of the pod name.
* **StatefulSet / DaemonSet** — ``k8s.statefulset.name`` / ``k8s.daemonset.name``; the revision is
  the ``k8s.pod.label.controller-revision-hash`` label as written, else ``service.version``.
* **CronJob / Job** — ``k8s.cronjob.name`` / ``k8s.job.name``; revision ``service.version``.
* **Pod** — Kubernetes attributes but no recognisable controller (a bare pod, or a pod name that
  does not follow the Deployment pattern): the workload is named after ``service.name``, else the
  pod; revision ``service.version``.
* **Service** — no Kubernetes attributes: ``service.namespace`` (or ``default``) /
  ``service.name``, revision ``service.version``.

A revision that cannot be derived is ``service.version``, else ``"unknown"``; a missing namespace
is ``"default"``.  The pod-name and ReplicaSet-name rules are the library's (``podtrace.naming``).
The result is cached per resource (``Resource.key``) in a bounded cache: this runs for every span.
"""

from __future__ import annotations

from typing import NamedTuple

from podtrace.naming import (
    CONTROLLER_REVISION_HASH_ATTR,
    K8S_WORKLOAD_KEYS,
    POD_TEMPLATE_HASH_ATTR,
    hash_from_pod_tail,
    split_pod_name,
    split_replicaset_name,
)
from podtrace_collector.model import AttrValue, Resource

UNKNOWN = "unknown"
DEFAULT_NAMESPACE = "default"
# Distinct resources remembered; a gateway sees one resource per pod and SDK, so this is plenty.
CACHE_SIZE = 4096


class WorkloadInfo(NamedTuple):
    """Who emitted a span: the workload (``"ns/name"``) at a revision, and registry details."""

    workload: str
    revision: str
    kind: str
    service: str
    version: str
    pod: str


_cache: dict[tuple[tuple[str, AttrValue], ...], WorkloadInfo] = {}
# Resource objects seen lately, by identity, each with its result: it spares hashing the attributes
# again for every trace the resource's batch contributes to.  Holding the resource keeps its id
# from being reused by another object while the entry exists.
_by_identity: dict[int, tuple[Resource, WorkloadInfo]] = {}
IDENTITY_CACHE_SIZE = 1024


def workload_of(resource: Resource) -> WorkloadInfo:
    """The workload and revision of the spans of ``resource`` (cached per distinct resource)."""
    hit = _by_identity.get(id(resource))
    if hit is not None and hit[0] is resource:
        return hit[1]
    info = _workload_by_key(resource)
    if len(_by_identity) >= IDENTITY_CACHE_SIZE:
        _by_identity.clear()
    _by_identity[id(resource)] = (resource, info)
    return info


def _workload_by_key(resource: Resource) -> WorkloadInfo:
    key = resource.key
    info = _cache.get(key)
    if info is None:
        info = derive_workload(resource.attributes)
        while _cache and len(_cache) >= CACHE_SIZE:
            # Evict the oldest entry: insertion order is a good enough proxy for staleness.
            del _cache[next(iter(_cache))]
        _cache[key] = info
    return info


def derive_workload(attrs: dict[str, AttrValue]) -> WorkloadInfo:
    """The uncached derivation behind ``workload_of``, from a plain attribute mapping."""
    version = _str(attrs, "service.version")
    service = _str(attrs, "service.name")
    if service.startswith("unknown_service"):
        service = ""  # the SDK's placeholder is not a name anyone chose
    pod = _str(attrs, "k8s.pod.name") or _str(attrs, "service.instance.id")
    if not any(k in attrs for k in K8S_WORKLOAD_KEYS):
        namespace = _str(attrs, "service.namespace") or DEFAULT_NAMESPACE
        name = service or UNKNOWN
        return WorkloadInfo(
            f"{namespace}/{name}", version or UNKNOWN, "Service", name, version, pod
        )
    namespace = _str(attrs, "k8s.namespace.name") or DEFAULT_NAMESPACE
    kind, name, revision = _k8s_controller(attrs, version)
    # A Deployment whose hash cannot be derived falls back to its version, like the others.
    revision = revision or version or UNKNOWN
    return WorkloadInfo(f"{namespace}/{name}", revision, kind, service or name, version, pod)


def _k8s_controller(attrs: dict[str, AttrValue], version: str) -> tuple[str, str, str]:
    """``(kind, name, revision)`` of the controller owning the pod."""
    deployment = _deployment(attrs)
    if deployment is not None:
        return ("Deployment", *deployment)
    revision_label = _str(attrs, CONTROLLER_REVISION_HASH_ATTR)
    for key, kind in (("k8s.statefulset.name", "StatefulSet"), ("k8s.daemonset.name", "DaemonSet")):
        name = _str(attrs, key)
        if name:
            return kind, name, revision_label or version
    for key, kind in (("k8s.cronjob.name", "CronJob"), ("k8s.job.name", "Job")):
        name = _str(attrs, key)
        if name:
            return kind, name, version
    name = _str(attrs, "service.name") or _str(attrs, "k8s.pod.name") or UNKNOWN
    return "Pod", name, version


def _deployment(attrs: dict[str, AttrValue]) -> tuple[str, str] | None:
    """``(deployment name, pod-template-hash)`` when the pod belongs to a Deployment."""
    deployment = _str(attrs, "k8s.deployment.name")
    replicaset = _str(attrs, "k8s.replicaset.name")
    pod = _str(attrs, "k8s.pod.name")
    label_hash = _str(attrs, POD_TEMPLATE_HASH_ATTR)
    if deployment:
        if replicaset.startswith(deployment + "-"):
            return deployment, replicaset[len(deployment) + 1 :]
        if label_hash:
            return deployment, label_hash
        if pod.startswith(deployment + "-"):
            return deployment, hash_from_pod_tail(pod[len(deployment) + 1 :])
        return deployment, ""
    if _str(attrs, "k8s.statefulset.name") or _str(attrs, "k8s.daemonset.name"):
        return None
    if replicaset:
        return split_replicaset_name(replicaset)
    if pod and not (_str(attrs, "k8s.job.name") or _str(attrs, "k8s.cronjob.name")):
        return split_pod_name(pod)
    return None


def _str(attrs: dict[str, AttrValue], key: str) -> str:
    value = attrs.get(key)
    return "" if value is None else str(value)
