"""Properties over generated pod templates: injection is idempotent, removal undoes it exactly,
the result is valid Kubernetes, and the webhook's JSON Patch rebuilds it."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from podtrace_collector.inject import InjectOptions, inject_template, remove_template
from podtrace_collector.inject.patch import make_patch

from tests import k8s_schema

NAMES = ["app", "api", "worker", "proxy", "migrate", "web"]
PODINFO = {
    "name": "podinfo",
    "downwardAPI": {
        "items": [
            {"path": p, "fieldRef": {"fieldPath": f"metadata.{p}"}}
            for p in ("labels", "annotations", "name", "namespace", "uid")
        ]
    },
}
ENV = st.sampled_from(
    [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://localhost:4318"},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-agent.monitoring:4318"},
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"},
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"},
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "CONTAINER_NAME", "value": "app"},
    ]
)


def _unique_env(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seen.setdefault(entry["name"], entry)
    return list(seen.values())


@st.composite
def containers(draw: st.DrawFn, name: str, volumes: list[str]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": f"registry.example.com/{name}:1"}
    if draw(st.booleans()):
        container["command"] = draw(
            st.sampled_from(
                [
                    ["python", "app.py"],
                    ["gunicorn", "app:app"],
                    ["podtrace", "run", "--", "python", "x.py"],
                ]
            )
        )
    if draw(st.booleans()):
        container["args"] = ["--port", "8080"]
    if draw(st.booleans()):
        container["env"] = _unique_env(draw(st.lists(ENV, max_size=5)))
    if draw(st.booleans()) and (ports := draw(st.sampled_from([[8080], [8080, 9090], []]))):
        container["ports"] = [{"containerPort": p} for p in ports]
    mounts = draw(st.lists(st.sampled_from(volumes), unique=True)) if volumes else []
    if mounts or draw(st.booleans()):
        paths = {"data": "/data", "podinfo": "/etc/podinfo", "cache": "/cache"}
        container["volumeMounts"] = [{"name": v, "mountPath": paths[v]} for v in mounts]
    return container


@st.composite
def templates(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4, unique=True))
    n_apps = draw(st.integers(min_value=1, max_value=len(names)))
    volume_names = draw(st.lists(st.sampled_from(["data", "podinfo", "cache"]), unique=True))
    volumes = [PODINFO if v == "podinfo" else {"name": v, "emptyDir": {}} for v in volume_names]
    spec: dict[str, Any] = {}
    init = [draw(containers(name, volume_names)) for name in names[n_apps:]]
    if init:
        for container in init:
            if draw(st.booleans()):
                container["restartPolicy"] = "Always"  # a native sidecar of the team's own
        spec["initContainers"] = init
    spec["containers"] = [draw(containers(name, volume_names)) for name in names[:n_apps]]
    if volumes or draw(st.booleans()):
        spec["volumes"] = volumes
    if draw(st.booleans()):
        spec["restartPolicy"] = draw(st.sampled_from(["Always", "OnFailure", "Never"]))
    if draw(st.booleans()):
        spec["terminationGracePeriodSeconds"] = 30
    if draw(st.booleans()):
        spec = dict(reversed(spec.items()))  # key order is the template's own, whatever it is
    template: dict[str, Any] = {}
    metadata = draw(st.sampled_from([None, {}, {"labels": {"app": "x"}}]))
    if metadata is not None:
        annotations = draw(
            st.dictionaries(
                st.sampled_from(
                    ["podtrace.io/python", "kubectl.kubernetes.io/default-container", "team"]
                ),
                st.sampled_from([names[0], "true", "owner-a"]),
            )
        )
        if "podtrace.io/python" in annotations and annotations["podtrace.io/python"] not in {
            "true",
            *names[:n_apps],
        }:
            del annotations["podtrace.io/python"]
        template["metadata"] = {**metadata, **({"annotations": annotations} if annotations else {})}
    template["spec"] = spec
    return template


OPTIONS = st.builds(
    InjectOptions,
    sidecar=st.sampled_from(["native", "container"]),
    python=st.sampled_from([frozenset(), frozenset({"*"})]),
    gateway=st.sampled_from(["podtrace-gateway.podtrace:4317", "gw:4317"]),
)


def _applicable(template: dict[str, Any], options: InjectOptions) -> None:
    """A plain sidecar container is refused for pods that run to completion (tested elsewhere)."""
    assume(options.native or template["spec"].get("restartPolicy", "Always") == "Always")


def _text(obj: Any) -> str:
    return json.dumps(obj)  # order-sensitive, unlike ==


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(templates(), OPTIONS)
def test_injecting_twice_is_injecting_once(
    template: dict[str, Any], options: InjectOptions
) -> None:
    """inject(inject(t)) == inject(t), key order included."""
    _applicable(template, options)
    once, _ = inject_template(template, options)
    twice, outcome = inject_template(once, options)
    assert _text(twice) == _text(once)
    assert not outcome.changed


@PROPERTY
@given(templates(), OPTIONS)
def test_remove_undoes_inject_exactly(template: dict[str, Any], options: InjectOptions) -> None:
    """remove(inject(t)) == t, key order included; removing again changes nothing."""
    _applicable(template, options)
    injected, _ = inject_template(template, options)
    removed, outcome = remove_template(injected)
    assert _text(removed) == _text(template)
    assert outcome.changed
    assert remove_template(removed)[0] is removed


@PROPERTY
@given(templates(), OPTIONS)
def test_injected_templates_are_valid_kubernetes(
    template: dict[str, Any], options: InjectOptions
) -> None:
    """Every injected template validates as a PodTemplateSpec, with one podtrace sidecar."""
    _applicable(template, options)
    k8s_schema.validate_pod_template(template)
    injected, _ = inject_template(template, options)
    k8s_schema.validate_pod_template(injected)
    spec = injected["spec"]
    names = [c["name"] for c in [*spec.get("initContainers", []), *spec["containers"]]]
    assert names.count("podtrace") == 1 and len(set(names)) == len(names)
    for app in spec["containers"]:
        env = [e["name"] for e in app["env"]]
        assert len(env) == len(set(env))
        assert {"POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME", "CONTAINER_NAME"} <= set(env)


@PROPERTY
@given(templates(), OPTIONS)
def test_the_json_patch_rebuilds_the_injected_template(
    template: dict[str, Any], options: InjectOptions
) -> None:
    """make_patch(t, inject(t)) applied to t by an independent RFC 6902 library gives inject(t)."""
    _applicable(template, options)
    injected, _ = inject_template(template, options)
    patched = jsonpatch.apply_patch(template, make_patch(template, injected))
    assert _text(patched) == _text(injected)
