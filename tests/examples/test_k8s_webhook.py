"""examples/k8s/webhook.yaml: valid Kubernetes, and wired to what ``podtrace webhook`` serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from podtrace_collector.config import CollectorConfig
from podtrace_collector.inject.admission import ALWAYS_EXCLUDED, PART_OF, Policy
from podtrace_collector.inject.cli import webhook_parser
from podtrace_collector.inject.options import INJECT
from podtrace_collector.inject.server import NAMESPACE_PATH, POD_PATH, create_app
from starlette.routing import Route

from tests import k8s_schema

K8S = Path(__file__).resolve().parents[2] / "examples" / "k8s"
DOCS = [d for d in yaml.safe_load_all((K8S / "webhook.yaml").read_text()) if d]


def _one(kind: str) -> dict[str, Any]:
    (obj,) = [d for d in DOCS if d["kind"] == kind]
    return obj


DEPLOYMENT = _one("Deployment")
POD = DEPLOYMENT["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]
ARGS = webhook_parser().parse_args(CONTAINER["command"][2:])
CONFIG = _one("MutatingWebhookConfiguration")
HOOKS = {hook["clientConfig"]["service"]["path"]: hook for hook in CONFIG["webhooks"]}


@pytest.mark.parametrize("obj", DOCS, ids=[d["kind"] for d in DOCS])
def test_objects_are_valid_kubernetes(obj: dict[str, Any]) -> None:
    """Every built-in object validates against the schemas; cert-manager's are custom resources."""
    if k8s_schema.has_schema(obj):
        k8s_schema.validate(obj)
    else:
        assert obj["apiVersion"] == "cert-manager.io/v1"


def test_the_webhook_paths_are_the_servers() -> None:
    """One webhook per path the server answers, each calling the Service on its HTTPS port."""
    served = {r.path for r in create_app(Policy()).routes if isinstance(r, Route)}
    assert set(HOOKS) == {POD_PATH, NAMESPACE_PATH} <= served
    service = _one("Service")
    for hook in CONFIG["webhooks"]:
        target = hook["clientConfig"]["service"]
        assert (target["name"], target["namespace"]) == (
            service["metadata"]["name"],
            service["metadata"]["namespace"],
        )
        assert target["port"] == service["spec"]["ports"][0]["port"]
    (port,) = CONTAINER["ports"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert port["containerPort"] == ARGS.port
    assert service["spec"]["selector"].items() <= POD["metadata"]["labels"].items()


@pytest.mark.parametrize("path", [POD_PATH, NAMESPACE_PATH])
def test_a_webhook_outage_never_blocks_pods(path: str) -> None:
    """failurePolicy Ignore, no side effects, AdmissionReview v1, pod creations only."""
    hook = HOOKS[path]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] <= 10
    (rule,) = hook["rules"]
    assert (rule["apiGroups"], rule["resources"], rule["operations"]) == (
        [""],
        ["pods"],
        ["CREATE"],
    )


@pytest.mark.parametrize("path", [POD_PATH, NAMESPACE_PATH])
def test_never_its_own_pods_nor_kube_system(path: str) -> None:
    """Both webhooks skip kube-system, the podtrace namespace and pods part-of podtrace."""
    hook = HOOKS[path]
    names = next(
        e
        for e in hook["namespaceSelector"]["matchExpressions"]
        if e["key"] == "kubernetes.io/metadata.name"
    )
    assert names["operator"] == "NotIn"
    assert {*ALWAYS_EXCLUDED, DEPLOYMENT["metadata"]["namespace"]} <= set(names["values"])
    (own,) = hook["objectSelector"]["matchExpressions"]
    assert (own["key"], own["operator"], own["values"]) == (PART_OF, "NotIn", ["podtrace"])
    assert POD["metadata"]["labels"][PART_OF] == "podtrace"


def test_namespace_label_and_pod_annotation_split_the_work() -> None:
    """Namespaces labelled enabled go to /mutate/namespace; elsewhere pods need the annotation."""
    (label,) = [
        e
        for e in HOOKS[NAMESPACE_PATH]["namespaceSelector"]["matchExpressions"]
        if e["key"] == INJECT
    ]
    assert (label["operator"], label["values"]) == ("In", ["enabled"])
    (label,) = [
        e for e in HOOKS[POD_PATH]["namespaceSelector"]["matchExpressions"] if e["key"] == INJECT
    ]
    assert (label["operator"], label["values"]) == ("NotIn", ["enabled", "disabled"])
    (condition,) = HOOKS[POD_PATH]["matchConditions"]
    assert f"object.metadata.annotations['{INJECT}'] == 'true'" in condition["expression"]


def test_tls_comes_from_the_cert_manager_certificate() -> None:
    """The Certificate's Secret is mounted where --tls-cert/--tls-key read it."""
    certificate = _one("Certificate")
    volume = next(v for v in POD["spec"]["volumes"] if v["name"] == "tls")
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]
    (mount,) = [m for m in CONTAINER["volumeMounts"] if m["name"] == "tls"]
    assert (ARGS.tls_cert, ARGS.tls_key) == (
        f"{mount['mountPath']}/tls.crt",
        f"{mount['mountPath']}/tls.key",
    )
    service = _one("Service")["metadata"]
    assert f"{service['name']}.{service['namespace']}.svc" in certificate["spec"]["dnsNames"]
    assert CONFIG["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == (
        f"{certificate['metadata']['namespace']}/{certificate['metadata']['name']}"
    )
    issuer = _one("Issuer")["metadata"]["name"]
    assert certificate["spec"]["issuerRef"] == {"kind": "Issuer", "name": issuer}


def test_probes_and_flags() -> None:
    """HTTPS probes on /healthz; the pods' sidecars forward to gateway.yaml's gateway."""
    for probe in (CONTAINER["readinessProbe"], CONTAINER["livenessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    gateway = [d for d in yaml.safe_load_all((K8S / "gateway.yaml").read_text()) if d]
    service = next(d for d in gateway if d["kind"] == "Service")["metadata"]
    host = f"{service['name']}.{service['namespace']}.svc.cluster.local"
    assert ARGS.gateway == f"{host}:{CollectorConfig().grpc_port}"
    assert ARGS.sidecar == "native"
    env = {e["name"]: e["valueFrom"] for e in CONTAINER["env"]}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
