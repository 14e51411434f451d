"""When a pod template cannot take podtrace (an error for the user), or is better skipped."""

from __future__ import annotations

from typing import Any

from podtrace_collector.errors import InjectError
from podtrace_collector.inject.options import (
    INJECT,
    OPENTELEMETRY_SIDECAR,
    InjectOptions,
    annotation_text,
)
from podtrace_collector.inject.sidecar import API_PORT, OTLP_PORTS, is_podtrace_sidecar

_COLLECTOR_IMAGES = ("opentelemetry-collector", "otelcol")


def reason_to_skip(spec: dict[str, Any]) -> str | None:
    for container in all_containers(spec):
        if is_podtrace_sidecar(container):
            return f"it already runs a podtrace sidecar (container {container.get('name')!r})"
    if spec.get("hostNetwork") is True:
        return "a hostNetwork pod shares the node's loopback, where a sidecar's ports would clash"
    return None


def check_conflicts(annotations: dict[str, Any], spec: dict[str, Any], opts: InjectOptions) -> None:
    operator = annotations.get(OPENTELEMETRY_SIDECAR)
    if operator is not None and annotation_text(annotations, OPENTELEMETRY_SIDECAR) != "false":
        raise InjectError(
            f"the OpenTelemetry Operator injects its own collector ({OPENTELEMETRY_SIDECAR}): "
            "it and podtrace's sidecar would both listen on 4317/4318: keep one of them"
        )
    for container in all_containers(spec):
        name = container.get("name")
        image = str(container.get("image", "")).rsplit("/", 1)[-1]
        if image.startswith(_COLLECTOR_IMAGES):
            raise InjectError(
                f"container {name!r} runs an OpenTelemetry Collector ({container['image']}), "
                "a different OTLP sidecar on 4317/4318: remove it, or opt the pod out with "
                f'{INJECT}: "false"'
            )
        for port in container.get("ports") or []:
            number = port.get("containerPort") if isinstance(port, dict) else None
            if number in OTLP_PORTS:
                raise InjectError(
                    f"container {name!r} already listens on port {number}: a different OTLP "
                    "sidecar or agent runs in this pod, and podtrace's sidecar needs 4317/4318 on "
                    f'the pod\'s loopback: remove it, or opt the pod out with {INJECT}: "false"'
                )
            if number == API_PORT:
                raise InjectError(
                    f"container {name!r} uses port {API_PORT}, the sidecar's API port"
                )
    policy = spec.get("restartPolicy", "Always")
    if not opts.native and policy != "Always":
        raise InjectError(
            f"a pod that runs to completion (restartPolicy: {policy}) needs the native sidecar: "
            "a plain sidecar container never exits, so the pod would never complete; "
            "use --sidecar=native (Kubernetes >= 1.29)"
        )


def all_containers(spec: dict[str, Any]) -> list[Any]:
    """Init containers (native sidecars among them) and containers."""
    return [*(spec.get("initContainers") or []), *spec["containers"]]
