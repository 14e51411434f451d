"""The Kubernetes examples: the fields podtrace depends on are where the product looks for them.

The manifests are parsed and checked against the code they feed: the detector's variable names
(``podtrace.environment_variables``), the collector's flag parser and default ports
(``podtrace_collector.config``) and the verdict names of the analysis.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from podtrace_collector.api.hosts import AllowedHosts
from podtrace_collector.config import CollectorConfig, load_config
from podtrace_collector.query.gate import NOT_SEEN, STATES
from podtrace_collector.query.verdict import HEALTHY, INSUFFICIENT_DATA, REGRESSED

from podtrace import environment_variables as envvars
from tests.examples.argo import FAILED, INCONCLUSIVE, SUCCESSFUL, evaluate_result

K8S = Path(__file__).resolve().parents[2] / "examples" / "k8s"
GATEWAY_HOSTS = {"podtrace-gateway.podtrace", "podtrace-gateway.podtrace.svc.cluster.local"}
UNTRACED = {"orders-broker", "loadgen"}  # the broker and the users: infrastructure, not the shop
DOWNWARD_ENV = {
    "metadata.name": envvars.POD_NAME_VARS,
    "metadata.namespace": envvars.NAMESPACE_VARS,
    "metadata.uid": envvars.POD_UID_VARS,
    "spec.nodeName": envvars.NODE_NAME_VARS,
}
PODINFO_FILES = {
    "labels": "metadata.labels",
    "annotations": "metadata.annotations",
    "name": "metadata.name",
    "namespace": "metadata.namespace",
    "uid": "metadata.uid",
}


def _load(name: str) -> list[dict[str, Any]]:
    with (K8S / name).open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


SHOP = _load("shop.yaml")
ARGO = _load("argo-analysis-template.yaml")


def _of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


DEPLOYMENTS = _of_kind(SHOP, "Deployment")
SERVICES = _of_kind(SHOP, "Service")
TRACED = sorted(set(DEPLOYMENTS) - UNTRACED)


def _pod(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = DEPLOYMENTS[name]["spec"]["template"]["spec"]
    return spec


def _app(name: str) -> dict[str, Any]:
    return next(c for c in _pod(name)["containers"] if c["name"] == name)


def _sidecar(name: str) -> dict[str, Any]:
    return next(c for c in _pod(name).get("initContainers", []) if c["name"] == "podtrace")


def _env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_the_shop_has_its_seven_services() -> None:
    """shop.yaml deploys every shop service, each in namespace shop with a Service."""
    assert (
        sorted(["frontend", "checkout", "cart", "payment", "shipping", "catalog", "recommendation"])
        == TRACED
    )
    for doc in SHOP:
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "shop"
    assert set(TRACED) <= set(SERVICES)


@pytest.mark.parametrize("name", TRACED)
def test_app_runs_under_podtrace_and_exports_to_its_sidecar(name: str) -> None:
    """The app is started by `podtrace run` and exports to the sidecar's OTLP/HTTP port."""
    app = _app(name)
    assert app["command"][:3] == ["podtrace", "run", "--"]
    endpoint = urlsplit(_env_of(app)["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert (endpoint.hostname, endpoint.port) == ("localhost", CollectorConfig().http_port)


@pytest.mark.parametrize("name", TRACED)
def test_downward_api_env_uses_names_the_detector_reads(name: str) -> None:
    """POD_NAME & co come from the right fieldRefs, under names the detector consults."""
    for container in (_app(name), _sidecar(name)):
        env = _env_of(container)
        for field_path, names in DOWNWARD_ENV.items():
            found = [n for n in names if n in env]
            assert found, f"{container['name']}: no variable for {field_path}"
            assert env[found[0]] == {"fieldRef": {"fieldPath": field_path}}
    # Both name the app's container: the sidecar stamps it on the app's spans, not its own name.
    for container in (_app(name), _sidecar(name)):
        env = _env_of(container)
        container_var = next(n for n in envvars.CONTAINER_NAME_VARS if n in env)
        assert env[container_var] == name


@pytest.mark.parametrize("name", TRACED)
def test_podinfo_volume_has_every_file_at_the_default_path(name: str) -> None:
    """The downward-API volume holds labels, annotations, name, namespace, uid at /etc/podinfo."""
    volume = next(v for v in _pod(name)["volumes"] if v["name"] == "podinfo")
    items = {i["path"]: i["fieldRef"]["fieldPath"] for i in volume["downwardAPI"]["items"]}
    assert items == PODINFO_FILES
    for container in (_app(name), _sidecar(name)):
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["podinfo"]["mountPath"] == envvars.DEFAULT_PODINFO_DIR
        assert mounts["podinfo"].get("readOnly") is True
        assert "PODTRACE_PODINFO_DIR" not in _env_of(container)


@pytest.mark.parametrize("name", TRACED)
def test_labels_give_service_name_and_version(name: str) -> None:
    """Pod labels name the service and its version, and the selector matches them."""
    deployment = DEPLOYMENTS[name]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == name
    assert re.fullmatch(r"\d+\.\d+\.\d+", labels["app.kubernetes.io/version"])
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert SERVICES[name]["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("name", TRACED)
def test_sidecar_is_a_native_sidecar_forwarding_to_the_gateway(name: str) -> None:
    """The sidecar's flags parse, select sidecar mode and forward over gRPC to the gateway."""
    sidecar = _sidecar(name)
    assert sidecar["restartPolicy"] == "Always"
    command = sidecar["command"]
    assert command[:2] == ["podtrace", "collector"]
    config = load_config(command[2:], environ={})
    assert config.mode == "sidecar"
    assert config.bind == "127.0.0.1"
    (forward,) = config.forward
    host, _, port = forward.rpartition(":")
    assert host in GATEWAY_HOSTS and int(port) == CollectorConfig().grpc_port
    assert config.memory_limit_bytes < _bytes(sidecar["resources"]["limits"]["memory"])
    # It listens on the pod's loopback only: a probe must run inside the pod to reach it.
    probe = " ".join(sidecar["startupProbe"]["exec"]["command"])
    assert f"http://127.0.0.1:{config.api_port}/readyz" in probe


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * {"Mi": 1024**2, "Gi": 1024**3}[unit]


def test_service_addresses_point_at_real_services_and_ports() -> None:
    """Every SHOP_<SERVICE>_ADDR / SHOP_QUEUE_URL names a Service of shop.yaml and its port."""
    checked = 0
    for name in DEPLOYMENTS:
        for container in _pod(name)["containers"]:
            for var, value in _env_of(container).items():
                if not (var.startswith("SHOP_") and var.endswith(("_ADDR", "_URL"))):
                    continue
                value = value.removeprefix("dns:///")  # gRPC's resolver prefix
                target = urlsplit(value if "//" in value else f"//{value}")
                service = target.hostname.split(".")[0]  # type: ignore[union-attr]
                ports = {p["port"] for p in SERVICES[service]["spec"]["ports"]}
                assert target.port in ports, f"{name}: {var}={value}"
                checked += 1
    assert checked >= 10


def test_named_ports_exist_on_the_containers() -> None:
    """Each Service's targetPort is a port the selected container declares."""
    for name, service in SERVICES.items():
        declared = {p["name"] for c in _pod(name)["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared, name


ANALYSIS = _of_kind(ARGO, "AnalysisTemplate")["podtrace-blast-radius"]
ROLLOUT = _of_kind(ARGO, "Rollout")["payment"]
METRIC = ANALYSIS["spec"]["metrics"][0]


def test_analysis_queries_the_gateway_gate() -> None:
    """The web provider asks the gateway's API port for the canary's gate, with its baseline."""
    url = urlsplit(METRIC["provider"]["web"]["url"])
    assert url.scheme == "http" and url.hostname in GATEWAY_HOSTS
    assert url.port == CollectorConfig().api_port
    assert url.path == "/api/v1/gate"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query == {
        "workload": "{{args.workload}}",
        "revision": "{{args.canary-hash}}",
        "baseline": "{{args.stable-hash}}",
    }
    assert METRIC["provider"]["web"]["jsonPath"] == "{$}"
    declared = {a["name"] for a in ANALYSIS["spec"]["args"]}
    used = set(re.findall(r"\{\{args\.([\w-]+)\}\}", METRIC["provider"]["web"]["url"]))
    assert used == declared


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        (REGRESSED, FAILED),
        (HEALTHY, SUCCESSFUL),
        (INSUFFICIENT_DATA, INCONCLUSIVE),
        (NOT_SEEN, INCONCLUSIVE),
    ],
)
def test_only_regressed_fails_a_measurement(state: str, phase: str) -> None:
    """Evaluated as Argo does, each of the gate's states gives its phase: only `regressed`
    fails, and the first failure aborts (failureLimit 0)."""
    assert set(STATES) == {REGRESSED, HEALTHY, INSUFFICIENT_DATA, NOT_SEEN}
    assert evaluate_result({"state": state, "verdict": None}, METRIC) == phase
    assert METRIC["failureLimit"] == 0


def test_rollout_hands_the_analysis_its_hashes() -> None:
    """The Rollout gates payment's canary with the template, passing Latest and Stable hashes."""
    canary = ROLLOUT["spec"]["strategy"]["canary"]
    analysis = canary["analysis"]
    assert analysis["templates"] == [{"templateName": ANALYSIS["metadata"]["name"]}]
    args = {a["name"]: a.get("value", a.get("valueFrom")) for a in analysis["args"]}
    assert args["workload"] == f"{ROLLOUT['metadata']['namespace']}/{ROLLOUT['metadata']['name']}"
    assert args["canary-hash"] == {"podTemplateHashValue": "Latest"}
    assert args["stable-hash"] == {"podTemplateHashValue": "Stable"}
    ref = ROLLOUT["spec"]["workloadRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", "payment") and "payment" in DEPLOYMENTS
    assert ROLLOUT["spec"]["selector"] == DEPLOYMENTS["payment"]["spec"]["selector"]


def test_the_gateway_they_point_at_exists() -> None:
    """gateway.yaml has the headless podtrace-gateway Service with the ports the shop uses."""
    gateway = _load("gateway.yaml")
    service = _of_kind(gateway, "Service")["podtrace-gateway"]
    assert service["metadata"]["namespace"] == "podtrace"
    assert service["spec"]["clusterIP"] == "None"
    ports = {p["port"] for p in service["spec"]["ports"]}
    assert {CollectorConfig().grpc_port, CollectorConfig().api_port} <= ports
    (deployment,) = _of_kind(gateway, "Deployment").values()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {_sidecar(name)["image"] for name in TRACED} == {container["image"]}


def test_the_gateway_api_answers_the_names_it_is_reached_by() -> None:
    """The gateway's --api-allowed-hosts admits both Services' names, as the Argo template and
    the docs use them (in-namespace, namespaced and fully qualified)."""
    (deployment,) = _of_kind(_load("gateway.yaml"), "Deployment").values()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    config = load_config(container["command"][2:], {})
    hosts = AllowedHosts(_no_app, allowed=config.api_allowed_hosts)
    argo_host = urlsplit(METRIC["provider"]["web"]["url"]).hostname
    names = {argo_host, "podtrace-api", "podtrace-api.podtrace"}
    names |= {f"{s}.podtrace.svc.cluster.local" for s in ("podtrace-api", "podtrace-gateway")}
    assert all(hosts.allows(name) for name in names if name)
    assert not hosts.allows("podtrace-api.evil.example")


async def _no_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("unreachable")


def test_the_clickhouse_gateway_is_a_fleet_behind_the_same_services() -> None:
    """gateway-clickhouse.yaml: several replicas whose --store comes from a Secret holding a
    ClickHouse URL, selected by the same Services as gateway.yaml, with no volume."""
    docs = _load("gateway-clickhouse.yaml")
    assert _of_kind(docs, "Service") == _of_kind(_load("gateway.yaml"), "Service")
    (deployment,) = _of_kind(docs, "Deployment").values()
    assert deployment["spec"]["replicas"] > 1
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "podtrace-gateway"
    (container,) = pod["spec"]["containers"]
    env = _env_of(container)
    ref = env["PODTRACE_STORE"]["secretKeyRef"]
    secret = _of_kind(docs, "Secret")[ref["name"]]
    url = secret["stringData"][ref["key"]]
    assert url.startswith("clickhouse://")
    argv = container["command"][2:]
    config = load_config(argv, {"PODTRACE_STORE": url})
    assert config.mode == "gateway" and config.store == url
    assert "volumes" not in pod["spec"] and not any("--store" in a for a in argv)
