"""Kubernetes naming rules: how pod and ReplicaSet names encode their owners and revisions.

One source for the library's detector (which fills ``k8s.replicaset.name`` and
``k8s.deployment.name`` from a pod name) and for the collector (which derives a span's workload and
revision from its resource, SPEC §4).  Pure functions, no I/O.

Kubernetes names a Deployment's ReplicaSet ``<deployment>-<pod-template-hash>`` and its pods
``<replicaset>-<5 chars>``; both the hash and the pod suffix come from ``rand.SafeEncodeString``,
whose alphabet has no vowels and no 0/1/3.  A name is split by these rules only when its parts are
of that alphabet, so that ``node-exporter-x7kq2`` (a DaemonSet pod) or ``my-job-28373640-x7kq2``
(a Job's) is not taken for a Deployment ``node`` at revision ``exporter``.
"""

from __future__ import annotations

import re

__all__ = [
    "CONTROLLER_REVISION_HASH",
    "CONTROLLER_REVISION_HASH_ATTR",
    "K8S_WORKLOAD_KEYS",
    "OWNER_KEYS",
    "POD_TEMPLATE_HASH",
    "POD_TEMPLATE_HASH_ATTR",
    "REVISION_LABELS",
    "SAFE_ALPHABET",
    "hash_from_pod_tail",
    "is_pod_suffix",
    "is_template_hash",
    "split_pod_name",
    "split_replicaset_name",
]

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_POD_SUFFIX = re.compile(rf"[{SAFE_ALPHABET}]{{5}}")
_TEMPLATE_HASH = re.compile(rf"[{SAFE_ALPHABET}]{{6,10}}")
_POD_NAME = re.compile(rf"(.+)-([{SAFE_ALPHABET}]{{6,10}})-[{SAFE_ALPHABET}]{{5}}")
POD_SUFFIX_LEN = 5

POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"
# Revision labels are always emitted as resource attributes (the collector derives revisions from
# them); other labels only when opted in.
REVISION_LABELS = (POD_TEMPLATE_HASH, CONTROLLER_REVISION_HASH)
POD_TEMPLATE_HASH_ATTR = f"k8s.pod.label.{POD_TEMPLATE_HASH}"
CONTROLLER_REVISION_HASH_ATTR = f"k8s.pod.label.{CONTROLLER_REVISION_HASH}"

# Owner attributes, in the order a service is named after its owner.
OWNER_KEYS = (
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
    "k8s.replicaset.name",
)
# Any of these on a resource means the span came from a Kubernetes pod.
K8S_WORKLOAD_KEYS = ("k8s.namespace.name", "k8s.pod.name", *OWNER_KEYS)


def is_pod_suffix(text: str) -> bool:
    """Whether ``text`` can be the 5-character random suffix of a ReplicaSet's pod."""
    return _POD_SUFFIX.fullmatch(text) is not None


def is_template_hash(text: str) -> bool:
    """Whether ``text`` can be a pod-template-hash."""
    return _TEMPLATE_HASH.fullmatch(text) is not None


def split_pod_name(pod: str) -> tuple[str, str] | None:
    """``(deployment, pod-template-hash)`` of a pod named ``<deployment>-<hash>-<5 chars>``.

    ``None`` when the name has another shape (a StatefulSet, DaemonSet or Job pod, a bare pod).
    """
    match = _POD_NAME.fullmatch(pod)
    return (match.group(1), match.group(2)) if match else None


def split_replicaset_name(replicaset: str) -> tuple[str, str] | None:
    """``(deployment, pod-template-hash)`` of a ReplicaSet name, split at its last dash.

    A ReplicaSet name comes from an owner reference or the pod's own attributes, so it is trusted
    to be ``<deployment>-<hash>`` without checking the hash's alphabet.
    """
    name, sep, rs_hash = replicaset.rpartition("-")
    return (name, rs_hash) if sep and name and rs_hash else None


def hash_from_pod_tail(tail: str) -> str:
    """The hash of the ``<hash>-<5 chars>`` that follows a known deployment name in a pod name.

    Returns ``""`` when ``tail`` has another shape.
    """
    pod_hash, sep, suffix = tail.rpartition("-")
    if sep and pod_hash and "-" not in pod_hash and len(suffix) == POD_SUFFIX_LEN:
        return pod_hash
    return ""
