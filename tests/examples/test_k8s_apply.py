"""examples/k8s/: every manifest is valid Kubernetes and applies on its own in its documented order.

No cluster here: every object is validated against the Kubernetes OpenAPI schemas
(``tests/k8s_schema.py``), and the apply order each file's header documents
(``kubectl apply -f examples/k8s/...`` lines) is replayed on paper: each object's namespace exists
by the time it is applied, what it refers to (volume claims, roles, the Deployment a Rollout
follows, its analysis template) is created by the same files, and no two files define one object
differently (applying one would silently overwrite the other).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.k8s_schema import (
    CLUSTER_SCOPED,
    describe,
    group_of,
    load_documents,
    schema_problems,
)

K8S = Path(__file__).resolve().parents[2] / "examples" / "k8s"
MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml"))
APPLY = re.compile(r"^#\s+kubectl apply -f examples/k8s/([\w.-]+\.yaml)", re.MULTILINE)
Key = tuple[str, str, str, str]  # group, kind, namespace, name


def _docs(name: str) -> list[dict[str, Any]]:
    return load_documents(K8S / name)


def _header(name: str) -> str:
    lines = (K8S / name).read_text().splitlines()
    return "\n".join(line for line in lines[: _first_code_line(lines)])


def _first_code_line(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line and not line.startswith("#"))


def apply_order(name: str) -> list[str]:
    """The files the header of *name* says to apply, in order, ending with *name* itself."""
    order = APPLY.findall(_header(name))
    assert order and order[-1] == name, f"{name}: its header must end with applying it"
    return order


def _key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    namespace = "" if obj["kind"] in CLUSTER_SCOPED else meta.get("namespace", "")
    return group_of(obj), obj["kind"], namespace, meta["name"]


def _ids(values: list[tuple[str, int]]) -> list[str]:
    return [f"{name}#{i}" for name, i in values]


DOCS = [(name, i) for name in MANIFESTS for i in range(len(_docs(name)))]


@pytest.mark.parametrize(("name", "index"), DOCS, ids=_ids(DOCS))
def test_every_object_is_valid_for_the_kubernetes_api(name: str, index: int) -> None:
    """Strict validation against the schema of its kind, oldest and newest supported release."""
    assert schema_problems(_docs(name)[index]) == []


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
          "spec": {"ports": [{"port": "http"}]}}, "spec.ports.0.port"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
          "spec": {"replica": 2, "selector": {}, "template": {}}}, "replica"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
          "spec": {"containers": [{"image": "x"}]}}, "'name' is a required property"),
        ({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
          "metadata": {"name": "r", "labels": {"a": 1}}}, "metadata.labels.a"),
        ({"apiVersion": "v1", "kind": "Deploymnet", "metadata": {"name": "x"}}, "Deploymnet"),
    ],
)  # fmt: skip
def test_the_schema_check_catches_what_an_api_server_refuses(
    obj: dict[str, Any], problem: str
) -> None:
    """A wrong type, a misspelt field, a missing name, bad custom-resource metadata, no kind."""
    problems = schema_problems(obj)
    assert problems and all(problem in p for p in problems), problems


@pytest.mark.parametrize("name", MANIFESTS)
def test_each_manifest_applies_on_its_own_in_its_documented_order(name: str) -> None:
    """Namespaces come first, and every object another one names is created by these files."""
    applied: list[dict[str, Any]] = []
    for file in apply_order(name):
        assert (K8S / file).is_file(), f"{name}: its header applies a missing {file}"
        for obj in _docs(file):
            _check_namespace(obj, applied)
            applied.append(obj)
    created = {key for obj in applied for key in _creates(obj)}
    for obj in _docs(name):
        for ref in _references(obj):
            assert ref in created, f"{name}: {describe(obj)} refers to {ref}, never applied"


def _creates(obj: dict[str, Any]) -> list[Key]:
    """The object itself, and for a cert-manager Certificate the Secret cert-manager writes."""
    keys = [_key(obj)]
    if group_of(obj) == "cert-manager.io" and obj["kind"] == "Certificate":
        keys.append(("", "Secret", obj["metadata"]["namespace"], obj["spec"]["secretName"]))
    return keys


def _check_namespace(obj: dict[str, Any], applied: list[dict[str, Any]]) -> None:
    if obj["kind"] in CLUSTER_SCOPED:
        return
    namespace = obj["metadata"].get("namespace")
    assert namespace, f"{describe(obj)}: no metadata.namespace (it would land in the current one)"
    namespaces = {o["metadata"]["name"] for o in applied if o["kind"] == "Namespace"}
    assert namespace in namespaces | {"default"}, f"{describe(obj)}: namespace not created yet"


def _references(obj: dict[str, Any]) -> list[Key]:
    namespace = obj["metadata"].get("namespace", "")
    spec = obj.get("spec") or {}
    refs: list[Key] = []
    pod = (spec.get("template") or {}).get("spec") or {}
    for volume in pod.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            refs.append(("", "PersistentVolumeClaim", namespace, claim))
        if "configMap" in volume and not volume["configMap"].get("optional"):
            refs.append(("", "ConfigMap", namespace, volume["configMap"]["name"]))
        if "secret" in volume and not volume["secret"].get("optional"):
            refs.append(("", "Secret", namespace, volume["secret"]["secretName"]))
    if pod.get("serviceAccountName", "default") != "default":
        refs.append(("", "ServiceAccount", namespace, pod["serviceAccountName"]))
    if obj["kind"] == "RoleBinding":
        role = obj["roleRef"]
        scope = "" if role["kind"] == "ClusterRole" else namespace
        refs.append((role["apiGroup"], role["kind"], scope, role["name"]))
    if obj["kind"] == "Rollout":
        ref = spec.get("workloadRef")
        if ref:
            refs.append((ref["apiVersion"].rpartition("/")[0], ref["kind"], namespace, ref["name"]))
        analysis = (spec["strategy"].get("canary") or {}).get("analysis") or {}
        for template in analysis.get("templates", []):
            refs.append(("argoproj.io", "AnalysisTemplate", namespace, template["templateName"]))
    return refs


def test_no_two_manifests_define_one_object_differently() -> None:
    """An object in two files is the same in both: applying one never rewrites the other's."""
    seen: dict[Key, tuple[str, dict[str, Any]]] = {}
    for name in MANIFESTS:
        for obj in _docs(name):
            key = _key(obj)
            if key in seen:
                first, earlier = seen[key]
                assert obj == earlier, f"{describe(obj)}: {first} and {name} define it differently"
            seen[key] = (name, obj)


def test_the_api_has_a_regular_service() -> None:
    """gateway.yaml: besides the headless Service for the sidecars, a ClusterIP one for the API."""
    services = {o["metadata"]["name"]: o for o in _docs("gateway.yaml") if o["kind"] == "Service"}
    api = services["podtrace-api"]
    assert api["spec"].get("clusterIP") != "None" and api["spec"].get("type", "ClusterIP") == (
        "ClusterIP"
    )
    assert [p["port"] for p in api["spec"]["ports"]] == [4320]
    (deployment,) = (o for o in _docs("gateway.yaml") if o["kind"] == "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert api["spec"]["selector"].items() <= labels.items()
