"""Optional Kubernetes API lookup: owners, image, labels of the pod this process runs in.

Enabled by ``PODTRACE_K8S_API=1``. Uses the pod's service-account token and CA (it needs RBAC
``get`` on pods, and on replicasets and jobs to resolve Deployments and CronJobs). The whole
lookup runs in a daemon thread joined with a hard deadline (at most 1 s), so a slow or broken
API server delays start-up by at most that much; any failure returns what was found so far.
Only the standard library is used: the library must not depend on the collector's extras.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podtrace import environment_variables as envvars
from podtrace._k8s_derive import split_image

logger = logging.getLogger(__name__)

MAX_TIMEOUT_S = 1.0


class K8sApiError(Exception):
    """The API lookup could not complete (network, HTTP status, malformed JSON, deadline)."""


@dataclass(slots=True)
class PodFacts:
    """What the API said about the pod; every field is optional."""

    attributes: dict[str, str | list[str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    image_tag: str | None = None


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Where and how to reach the API server."""

    base_url: str
    token: str | None
    ca_file: str | None
    timeout_s: float


def config_from_env(serviceaccount_dir: Path) -> ApiConfig | None:
    """Build the API configuration, or None when no API server address is known."""
    base = envvars.get(envvars.PODTRACE_K8S_API_URL)
    if base is None:
        host = envvars.get(envvars.KUBERNETES_SERVICE_HOST)
        if host is None:
            return None
        port = envvars.get(envvars.KUBERNETES_SERVICE_PORT) or "443"
        base = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    token_text = _read(serviceaccount_dir / "token")
    ca = serviceaccount_dir / "ca.crt"
    timeout_s = min(
        envvars.seconds(envvars.PODTRACE_K8S_API_TIMEOUT_S, envvars.DEFAULT_K8S_API_TIMEOUT_S),
        MAX_TIMEOUT_S,
    )
    return ApiConfig(base.rstrip("/"), token_text, str(ca) if ca.is_file() else None, timeout_s)


def lookup(config: ApiConfig, namespace: str, pod_name: str, container: str | None) -> PodFacts:
    """Query the API within ``config.timeout_s`` in total.

    Raises:
        K8sApiError: when the pod itself could not be fetched in time; owner lookups that fail
            later are dropped silently, keeping what the pod object said.
    """
    deadline = time.monotonic() + config.timeout_s
    facts = PodFacts()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            _fill(config, deadline, namespace, pod_name, container, facts)
        except BaseException as exc:  # reported through `errors`, never raised in the thread
            errors.append(exc)

    thread = threading.Thread(target=work, name="podtrace-k8s-api", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise K8sApiError(f"no answer within {config.timeout_s:.2f}s")
    if errors and not facts.attributes:
        raise K8sApiError(str(errors[0])) from errors[0]
    # Copy: a late-running thread must not mutate what the caller already holds.
    return PodFacts(
        dict(facts.attributes), dict(facts.labels), dict(facts.annotations), facts.image_tag
    )


def _fill(
    config: ApiConfig,
    deadline: float,
    namespace: str,
    pod_name: str,
    container: str | None,
    facts: PodFacts,
) -> None:
    ns = urllib.parse.quote(namespace, safe="")
    pod = _get(config, deadline, f"/api/v1/namespaces/{ns}/pods/{urllib.parse.quote(pod_name)}")
    _from_pod(pod, container, facts)
    for owner in _owners(pod):
        kind, name = owner
        if kind == "ReplicaSet":
            facts.attributes["k8s.replicaset.name"] = name
            rs = _get(config, deadline, f"/apis/apps/v1/namespaces/{ns}/replicasets/{name}")
            for okind, oname in _owners(rs):
                if okind == "Deployment":
                    facts.attributes["k8s.deployment.name"] = oname
        elif kind in {"StatefulSet", "DaemonSet"}:
            facts.attributes[f"k8s.{kind.lower()}.name"] = name
        elif kind == "Job":
            facts.attributes["k8s.job.name"] = name
            job = _get(config, deadline, f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")
            for okind, oname in _owners(job):
                if okind == "CronJob":
                    facts.attributes["k8s.cronjob.name"] = oname


def _from_pod(pod: dict[str, Any], container: str | None, facts: PodFacts) -> None:
    meta = _dict(pod.get("metadata"))
    spec = _dict(pod.get("spec"))
    facts.labels.update({str(k): str(v) for k, v in _dict(meta.get("labels")).items()})
    facts.annotations.update({str(k): str(v) for k, v in _dict(meta.get("annotations")).items()})
    _put(facts, "k8s.pod.uid", meta.get("uid"))
    _put(facts, "k8s.node.name", spec.get("nodeName"))
    containers = [_dict(c) for c in _list(spec.get("containers"))]
    chosen = _choose_container(containers, container)
    if chosen is None:
        return
    _put(facts, "k8s.container.name", chosen.get("name"))
    image = chosen.get("image")
    if isinstance(image, str) and image:
        name, tag = split_image(image)
        facts.attributes["container.image.name"] = name
        if tag:
            facts.attributes["container.image.tags"] = [tag]
            facts.image_tag = tag
    status = _dict(pod.get("status"))
    for cs in (_dict(s) for s in _list(status.get("containerStatuses"))):
        cid = cs.get("containerID")
        if cs.get("name") == chosen.get("name") and isinstance(cid, str) and "://" in cid:
            facts.attributes["container.id"] = cid.partition("://")[2]


def _choose_container(containers: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    if name is not None:
        return next((c for c in containers if c.get("name") == name), None)
    # Without the container's name, only a single-container pod is unambiguous.
    return containers[0] if len(containers) == 1 else None


def _owners(obj: dict[str, Any]) -> list[tuple[str, str]]:
    refs = _list(_dict(obj.get("metadata")).get("ownerReferences"))
    out = []
    for ref in (_dict(r) for r in refs):
        kind, name = ref.get("kind"), ref.get("name")
        if isinstance(kind, str) and isinstance(name, str) and ref.get("controller", True):
            out.append((kind, name))
    return out


def _get(config: ApiConfig, deadline: float, path: str) -> dict[str, Any]:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise K8sApiError("deadline passed")
    request = urllib.request.Request(config.base_url + path, headers={"Accept": "application/json"})
    if config.token:
        request.add_header("Authorization", f"Bearer {config.token}")
    context = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=remaining, context=context) as response:
            body = json.loads(response.read(4 * 1024 * 1024))
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        raise K8sApiError(f"GET {path}: HTTP {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise K8sApiError(f"GET {path}: {exc}") from exc
    if not isinstance(body, dict):
        raise K8sApiError(f"GET {path}: not a JSON object")
    return body


def _put(facts: PodFacts, key: str, value: object) -> None:
    if isinstance(value, str) and value:
        facts.attributes[key] = value


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
