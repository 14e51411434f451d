"""The parts podtrace adds to a pod, as `examples/k8s/sidecar.yaml` and `downward-api.yaml` show."""

from __future__ import annotations

from typing import Any

from podtrace import environment_variables as envvars
from podtrace_collector.config import CollectorConfig
from podtrace_collector.inject.options import InjectOptions

SIDECAR_NAME = "podtrace"
PODINFO_VOLUME = "podinfo"
PODINFO_DIR = envvars.DEFAULT_PODINFO_DIR
RUN_PREFIX = ("podtrace", "run", "--")
ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"

_PORTS = CollectorConfig()
OTLP_PORTS = (_PORTS.grpc_port, _PORTS.http_port)
API_PORT = _PORTS.api_port
APP_ENDPOINTS = {  # OTEL_EXPORTER_OTLP_PROTOCOL -> the sidecar's receiver for it
    "http/protobuf": f"http://localhost:{_PORTS.http_port}",
    "http/json": f"http://localhost:{_PORTS.http_port}",
    "grpc": f"http://localhost:{_PORTS.grpc_port}",
}

# The sidecar's own flags: a small memory budget below the container's limit (96Mi), a bounded
# retry queue, and a drain on SIGTERM shorter than the usual 30 s grace period.
SIDECAR_FLAGS = ("--memory-limit=32MiB", "--forward-queue-spans=20000", "--drain-timeout=10s")

# The sidecar binds the pod's loopback, which kubelet HTTP probes cannot reach: probe from inside.
_READY_URL = f"http://127.0.0.1:{API_PORT}/readyz"
_READY_CHECK = f"import urllib.request; urllib.request.urlopen('{_READY_URL}', timeout=1)"
_DOWNWARD_FIELDS = (
    ("POD_NAME", "metadata.name"),
    ("POD_NAMESPACE", "metadata.namespace"),
    ("POD_UID", "metadata.uid"),
    ("NODE_NAME", "spec.nodeName"),
)
_PODINFO_ITEMS = ("labels", "annotations", "name", "namespace", "uid")


def downward_env(container_name: str) -> list[dict[str, Any]]:
    """The detector's pod identity: four downward-API fields and the (app) container's name."""
    env: list[dict[str, Any]] = [
        {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
        for name, path in _DOWNWARD_FIELDS
    ]
    env.append({"name": "CONTAINER_NAME", "value": container_name})
    return env


def app_env(container_name: str, protocol: str = "http/protobuf") -> list[dict[str, Any]]:
    """An app container's variables: its identity, and its OpenTelemetry SDK's sidecar endpoint.

    ``protocol`` is the app's own ``OTEL_EXPORTER_OTLP_PROTOCOL``, if it sets one: an app that
    speaks gRPC is pointed at the gRPC port.
    """
    endpoint = APP_ENDPOINTS.get(protocol, APP_ENDPOINTS["http/protobuf"])
    return [
        *downward_env(container_name),
        {"name": ENDPOINT, "value": endpoint},
        {"name": PROTOCOL, "value": protocol},
    ]


def podinfo_mount() -> dict[str, Any]:
    return {"name": PODINFO_VOLUME, "mountPath": PODINFO_DIR, "readOnly": True}


def podinfo_volume() -> dict[str, Any]:
    """Labels and annotations reach a container only through a downward-API volume."""
    items = [
        {"path": item, "fieldRef": {"fieldPath": f"metadata.{item}"}} for item in _PODINFO_ITEMS
    ]
    return {"name": PODINFO_VOLUME, "downwardAPI": {"items": items}}


def sidecar_container(options: InjectOptions, app_container: str) -> dict[str, Any]:
    """The collector in sidecar mode, stamping ``app_container``'s name on the spans it forwards."""
    container: dict[str, Any] = {"name": SIDECAR_NAME, "image": options.image}
    if options.native:
        container["restartPolicy"] = "Always"
    container["command"] = [
        "podtrace",
        "collector",
        "--mode=sidecar",
        "--bind=127.0.0.1",
        f"--forward={options.gateway}",
        *SIDECAR_FLAGS,
    ]
    env = downward_env(app_container)
    if options.forward_token_secret:
        secret, key = options.forward_token_secret.split("/", 1)
        ref = {"secretKeyRef": {"name": secret, "key": key}}
        env.append({"name": "PODTRACE_FORWARD_TOKEN", "valueFrom": ref})
    container["env"] = env
    container["startupProbe"] = {
        "exec": {"command": ["python", "-c", _READY_CHECK]},
        "periodSeconds": 1,
        "failureThreshold": 30,
    }
    container["volumeMounts"] = [podinfo_mount()]
    container["resources"] = {
        "requests": {"cpu": "20m", "memory": "48Mi"},
        "limits": {"memory": "96Mi"},
    }
    container["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return container


def is_podtrace_sidecar(container: dict[str, Any]) -> bool:
    """A podtrace collector container, whether podtrace added it or someone wrote it by hand."""
    command = container.get("command")
    runs_collector = isinstance(command, list) and command[:2] == ["podtrace", "collector"]
    return container.get("name") == SIDECAR_NAME or runs_collector
