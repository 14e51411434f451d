"""Simulated pods: Kubernetes-shaped names and the files and variables a real pod would see.

A revision's pod-template-hash is computed the way the Deployment controller does it (FNV-1a of
the pod template, its decimal digits mapped onto Kubernetes' "safe" alphabet), so the hashes look
exactly like real ones (``66b6c48dd5``).  Each pod gets the downward-API environment variables and
a podinfo directory (labels, annotations, name, namespace, uid), plus a service-account namespace
file and a containerd-style cgroup line, so the podtrace detector finds what it would in a cluster.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

NAMESPACE = "shop"
NODES = ("kind-worker", "kind-worker2")

# k8s.io/apimachinery/pkg/util/rand: the alphabet of generated names and encoded hashes.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: str) -> str:
    """The pod-template-hash Kubernetes would give a pod template described by *template*."""
    value = 0x811C9DC5
    for byte in template.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(value))


def pod_suffix(rng: random.Random) -> str:
    """The five random characters that end a Deployment's pod names."""
    return "".join(rng.choice(_SAFE_ALPHABET) for _ in range(5))


@dataclass(frozen=True)
class Revision:
    """One pod template of a Deployment: its version and the environment it runs with."""

    deployment: str
    version: str
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """The revision's pod-template-hash."""
        settings = ",".join(f"{k}={v}" for k, v in sorted(self.env.items()))
        return template_hash(f"{NAMESPACE}/{self.deployment}:{self.version}|{settings}")

    @property
    def replicaset(self) -> str:
        """The ReplicaSet that owns this revision's pods."""
        return f"{self.deployment}-{self.hash}"


@dataclass(frozen=True)
class Pod:
    """One simulated pod of a revision, listening on *port*."""

    revision: Revision
    name: str
    uid: str
    node: str
    port: int

    @classmethod
    def create(cls, revision: Revision, *, port: int, rng: random.Random) -> Pod:
        """A new pod of *revision*, named ``<deployment>-<hash>-<5 chars>`` as Kubernetes would."""
        return cls(
            revision=revision,
            name=f"{revision.replicaset}-{pod_suffix(rng)}",
            uid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            node=rng.choice(NODES),
            port=port,
        )

    @property
    def address(self) -> str:
        """Where the pod listens (``host:port``)."""
        return f"127.0.0.1:{self.port}"

    def labels(self) -> dict[str, str]:
        """The pod's labels, as the Deployment's template and controller set them."""
        return {
            "app.kubernetes.io/name": self.revision.deployment,
            "app.kubernetes.io/part-of": "shop",
            "app.kubernetes.io/version": self.revision.version,
            "pod-template-hash": self.revision.hash,
        }

    def write_files(self, root: Path) -> Path:
        """Write the pod's downward-API volume and detector files under *root*; return its dir."""
        pod_dir = root / self.name
        podinfo = pod_dir / "podinfo"
        podinfo.mkdir(parents=True, exist_ok=True)
        seen = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
        annotations = {"kubernetes.io/config.seen": seen, "kubernetes.io/config.source": "api"}
        (podinfo / "labels").write_text(_downward_format(self.labels()))
        (podinfo / "annotations").write_text(_downward_format(annotations))
        (podinfo / "name").write_text(self.name)
        (podinfo / "namespace").write_text(NAMESPACE)
        (podinfo / "uid").write_text(self.uid)
        account = pod_dir / "serviceaccount"
        account.mkdir(exist_ok=True)
        (account / "namespace").write_text(NAMESPACE)
        container_id = uuid.uuid5(uuid.NAMESPACE_OID, self.name).hex * 2
        slice_uid = self.uid.replace("-", "_")
        (pod_dir / "cgroup").write_text(
            "0::/kubepods.slice/kubepods-burstable.slice/"
            f"kubepods-burstable-pod{slice_uid}.slice/cri-containerd-{container_id}.scope\n"
        )
        (pod_dir / "mountinfo").write_text("")
        return pod_dir

    def env(self, pod_dir: Path, *, container: str) -> dict[str, str]:
        """The variables the pod's *container* sees: downward API plus the detector's paths."""
        return {
            "POD_NAME": self.name,
            "POD_NAMESPACE": NAMESPACE,
            "POD_UID": self.uid,
            "NODE_NAME": self.node,
            "CONTAINER_NAME": container,
            "HOSTNAME": self.name,
            "PODTRACE_PODINFO_DIR": str(pod_dir / "podinfo"),
            "PODTRACE_SERVICEACCOUNT_DIR": str(pod_dir / "serviceaccount"),
            "PODTRACE_CGROUP_PATH": str(pod_dir / "cgroup"),
            "PODTRACE_MOUNTINFO_PATH": str(pod_dir / "mountinfo"),
            "PODTRACE_HOSTNAME": self.name,
            **self.revision.env,
        }


def _downward_format(values: Mapping[str, str]) -> str:
    # The kubelet writes one key="value" per line, sorted, with Go-style quoting.
    def quote(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "\n".join(f'{k}="{quote(v)}"' for k, v in sorted(values.items())) + "\n"
