"""Kubernetes detection over fake pod filesystems: every source, spelling and precedence."""

from __future__ import annotations

import logging
import os
import time

import pytest
from opentelemetry.sdk.resources import Resource

from podtrace import KubernetesResourceDetector, detect_kubernetes_attributes
from podtrace._k8s import cached_attributes, clear_cache, service_instance_id
from tests.library import fake_k8s_api as fake
from tests.library.fake_pod_fs import FakePod

UID = "5f8a1c2e-7d3b-4e9f-a1b2-c3d4e5f6a7b8"
CTR = "3f2a9c1d4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
SANDBOX = "9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
SLICE = (
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice"
)
MOUNTS = (
    f"1 0 253:1 /var/lib/kubelet/pods/{UID}/containers/app/1a2b /dev/termination-log"
    " rw - ext4 x rw\n"
    f"2 0 253:1 /var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/{SANDBOX}/hostname"
    " /etc/hostname rw - ext4 x rw\n"
)


def test_outside_kubernetes_detects_nothing() -> None:
    """No pod evidence: empty, and the hostname is never taken for a pod name."""
    assert detect_kubernetes_attributes() == {}


def test_generic_container_name_alone_is_not_a_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    """CONTAINER_NAME is too generic a variable to prove we run in a pod."""
    monkeypatch.setenv("CONTAINER_NAME", "something")
    assert detect_kubernetes_attributes() == {}


@pytest.mark.parametrize(
    ("var", "key"),
    [
        ("OTEL_RESOURCE_ATTRIBUTES_POD_NAME", "k8s.pod.name"),
        ("POD_NAME", "k8s.pod.name"),
        ("K8S_POD_NAME", "k8s.pod.name"),
        ("OTEL_RESOURCE_ATTRIBUTES_POD_UID", "k8s.pod.uid"),
        ("POD_UID", "k8s.pod.uid"),
        ("K8S_POD_UID", "k8s.pod.uid"),
        ("OTEL_RESOURCE_ATTRIBUTES_NODE_NAME", "k8s.node.name"),
        ("NODE_NAME", "k8s.node.name"),
        ("K8S_NODE_NAME", "k8s.node.name"),
        ("POD_NAMESPACE", "k8s.namespace.name"),
        ("K8S_NAMESPACE", "k8s.namespace.name"),
        ("K8S_NAMESPACE_NAME", "k8s.namespace.name"),
        ("CONTAINER_NAME", "k8s.container.name"),
        ("K8S_CONTAINER_NAME", "k8s.container.name"),
    ],
)
def test_every_downward_env_spelling(monkeypatch: pytest.MonkeyPatch, var: str, key: str) -> None:
    """Each documented environment spelling feeds its attribute."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv(var, "value-from-" + var.lower())
    assert detect_kubernetes_attributes()[key] == "value-from-" + var.lower()


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("OTEL_RESOURCE_ATTRIBUTES_POD_NAME", "POD_NAME"),
        ("POD_NAME", "K8S_POD_NAME"),
        ("POD_NAMESPACE", "K8S_NAMESPACE"),
        ("K8S_NAMESPACE", "K8S_NAMESPACE_NAME"),
        ("OTEL_RESOURCE_ATTRIBUTES_NODE_NAME", "NODE_NAME"),
        ("CONTAINER_NAME", "K8S_CONTAINER_NAME"),
    ],
)
def test_env_spelling_order(monkeypatch: pytest.MonkeyPatch, earlier: str, later: str) -> None:
    """When two spellings are set, the documented order decides."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv(earlier, "first")
    monkeypatch.setenv(later, "second")
    assert "first" in detect_kubernetes_attributes().values()
    assert "second" not in detect_kubernetes_attributes().values()


def _full_pod(fake_pod: FakePod) -> None:
    fake_pod.write_podinfo("name", "cart-7d9f8c6b5-x2k4p\n")
    fake_pod.write_podinfo("namespace", "shop")
    fake_pod.write_podinfo("uid", UID)
    fake_pod.write_podinfo(
        "labels",
        'app.kubernetes.io/name="cart"\napp.kubernetes.io/version="1.4.0"\n'
        'pod-template-hash="7d9f8c6b5"\nteam="payments"\n',
    )
    fake_pod.write_podinfo(
        "annotations",
        'resource.opentelemetry.io/deployment.environment.name="prod"\n'
        'kubectl.kubernetes.io/restartedAt="2026-11-24T10:00:00Z"\n',
    )
    fake_pod.write_namespace("shop")
    fake_pod.write_proc(cgroup=f"0::{SLICE}/cri-containerd-{CTR}.scope\n", mountinfo=MOUNTS)


def test_full_downward_volume_pod(fake_pod: FakePod) -> None:
    """A Deployment's pod with a downward-API volume: every attribute, derived ones included."""
    _full_pod(fake_pod)
    assert detect_kubernetes_attributes() == {
        "k8s.pod.name": "cart-7d9f8c6b5-x2k4p",
        "k8s.namespace.name": "shop",
        "k8s.pod.uid": UID,
        "k8s.container.name": "app",
        "container.id": CTR,
        "k8s.replicaset.name": "cart-7d9f8c6b5",
        "k8s.deployment.name": "cart",
        "service.name": "cart",
        "service.version": "1.4.0",
        "deployment.environment.name": "prod",
        "k8s.pod.label.pod-template-hash": "7d9f8c6b5",
    }


def test_opt_in_labels(fake_pod: FakePod, monkeypatch: pytest.MonkeyPatch) -> None:
    """PODTRACE_POD_LABELS adds the named labels."""
    _full_pod(fake_pod)
    monkeypatch.setenv("PODTRACE_POD_LABELS", "team")
    assert detect_kubernetes_attributes()["k8s.pod.label.team"] == "payments"


def test_precedence_explicit_env_volume_filesystem(
    fake_pod: FakePod, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_RESOURCE_ATTRIBUTES > downward env > downward volume > filesystem."""
    _full_pod(fake_pod)
    fake_pod.write_namespace("from-sa-file")
    monkeypatch.setenv("POD_NAMESPACE", "from-env")
    monkeypatch.setenv("POD_NAME", "cart-5c4b3a291-abcde")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=explicit-pod,other=x")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "explicit-service")
    got = detect_kubernetes_attributes()
    assert got["k8s.pod.name"] == "explicit-pod"
    assert got["k8s.namespace.name"] == "from-env"
    assert got["service.name"] == "explicit-service"
    assert "other" not in got  # not ours to repeat: the SDK's OTEL detector carries it


def test_volume_beats_service_account_namespace(fake_pod: FakePod) -> None:
    """The downward-API namespace file wins over the service-account one."""
    _full_pod(fake_pod)
    fake_pod.write_namespace("from-sa-file")
    assert detect_kubernetes_attributes()["k8s.namespace.name"] == "shop"


def test_filesystem_only_pod_uses_hostname(
    fake_pod: FakePod, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No downward API: namespace file, cgroup and the hostname as a last resort."""
    fake_pod.write_namespace("shop")
    fake_pod.write_proc(cgroup=f"0::{SLICE}/cri-containerd-{CTR}.scope\n", mountinfo=MOUNTS)
    monkeypatch.setenv("PODTRACE_HOSTNAME", "cart-7d9f8c6b5-x2k4p")
    got = detect_kubernetes_attributes()
    assert got["k8s.pod.name"] == "cart-7d9f8c6b5-x2k4p"
    assert got["k8s.deployment.name"] == "cart"
    assert got["service.name"] == "cart"
    assert got["container.id"] == CTR
    assert got["k8s.pod.uid"] == UID


def test_host_network_hostname_is_not_a_pod_name(
    fake_pod: FakePod, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With hostNetwork the hostname is the node's name: it is not taken for the pod's."""
    fake_pod.write_namespace("monitoring")
    monkeypatch.setenv("NODE_NAME", "node-1")
    monkeypatch.setenv("PODTRACE_HOSTNAME", "node-1")
    got = detect_kubernetes_attributes()
    assert got["k8s.node.name"] == "node-1"
    assert "k8s.pod.name" not in got


def test_pause_container_never_reported(fake_pod: FakePod) -> None:
    """Private cgroup namespace: the sandbox id in mountinfo is not reported as container.id."""
    fake_pod.write_namespace("shop")
    fake_pod.write_proc(cgroup="0::/\n", mountinfo=MOUNTS)
    got = detect_kubernetes_attributes()
    assert "container.id" not in got
    assert SANDBOX not in got.values()


def test_malformed_volume_is_logged_once(
    fake_pod: FakePod, caplog: pytest.LogCaptureFixture
) -> None:
    """A labels file in the wrong format is skipped with one warning."""
    fake_pod.write_podinfo("name", "web-0")
    fake_pod.write_podinfo("labels", "this is not a labels file\n")
    with caplog.at_level(logging.WARNING, logger="podtrace"):
        assert detect_kubernetes_attributes()["k8s.pod.name"] == "web-0"
        detect_kubernetes_attributes()
    assert len([r for r in caplog.records if "labels" in r.getMessage()]) == 1


def test_api_lookup_fills_owner_and_image(
    fake_pod: FakePod, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PODTRACE_K8S_API=1: owners, image and container id from recorded API JSON."""
    fake_pod.write_namespace(fake.NS)
    (fake_pod.root / "serviceaccount" / "token").write_text("tok")
    monkeypatch.setenv("PODTRACE_HOSTNAME", fake.POD)
    monkeypatch.setenv("CONTAINER_NAME", "app")
    monkeypatch.setenv("PODTRACE_K8S_API", "1")
    with fake.FakeKubernetesApi() as api:
        monkeypatch.setenv("PODTRACE_K8S_API_URL", api.url)
        got = detect_kubernetes_attributes()
    assert got["k8s.deployment.name"] == "cart"
    assert got["k8s.node.name"] == "node-1"
    assert got["container.image.name"] == "ghcr.io/shop/cart"
    assert got["container.image.tags"] == ["1.4.0"]
    assert got["container.id"] == fake.CTR
    assert got["service.version"] == "1.4.0"
    assert got["deployment.environment.name"] == "prod"
    assert api.requests[0][1] == "Bearer tok"


def test_broken_api_is_skipped_within_a_second(
    fake_pod: FakePod, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A hanging API server delays detection by at most 1 s and is logged once."""
    fake_pod.write_namespace(fake.NS)
    monkeypatch.setenv("PODTRACE_HOSTNAME", fake.POD)
    monkeypatch.setenv("PODTRACE_K8S_API", "1")
    routes = {fake.POD_PATH: (200, fake.POD_JSON, 3.0)}
    with fake.FakeKubernetesApi(routes) as api, caplog.at_level(logging.WARNING):
        monkeypatch.setenv("PODTRACE_K8S_API_URL", api.url)
        start = time.monotonic()
        got = detect_kubernetes_attributes()
        elapsed = time.monotonic() - start
    assert elapsed < 1.5
    assert got["k8s.deployment.name"] == "cart"  # derived from the name without the API
    assert "k8s.node.name" not in got
    assert len([r for r in caplog.records if "API lookup skipped" in r.getMessage()]) == 1


def test_detection_never_raises(fake_pod: FakePod, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even an unreadable path (a directory where a file should be) gives a result, not an error."""
    fake_pod.write_namespace("shop")
    os.makedirs(fake_pod.root / "podinfo" / "labels")
    monkeypatch.setenv("PODTRACE_CGROUP_PATH", "/dev/null/not-a-dir")
    assert detect_kubernetes_attributes()["k8s.namespace.name"] == "shop"


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"k8s.pod.uid": UID, "k8s.container.name": "app"}, f"{UID}/app/42"),
        ({"k8s.pod.uid": UID}, f"{UID}/42"),
        ({"k8s.namespace.name": "shop", "k8s.pod.name": "web-0"}, "shop/web-0/42"),
        ({"k8s.pod.name": "web-0"}, None),
        ({"service.instance.id": "explicit", "k8s.pod.uid": UID}, "explicit"),
        ({}, None),
    ],
)
def test_service_instance_id_policy(attrs: dict[str, str], expected: str | None) -> None:
    """Pod uid (or namespace/name) + container + pid; explicit wins; nothing outside a pod."""
    assert service_instance_id(attrs, 42) == expected


def test_detector_is_process_dependent_and_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK seam: pod attributes cached per process tree, instance id per pid."""
    monkeypatch.setenv("POD_NAME", "web-0")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    detector = KubernetesResourceDetector()
    assert detector.is_process_dependent()
    resource = detector.detect()
    assert isinstance(resource, Resource)
    assert resource.attributes["service.instance.id"] == f"shop/web-0/{os.getpid()}"
    monkeypatch.setenv("POD_NAME", "web-1")
    assert cached_attributes()["k8s.pod.name"] == "web-0"
    clear_cache()
    assert detector.detect().attributes["k8s.pod.name"] == "web-1"


def test_detector_entry_point_is_registered() -> None:
    """opentelemetry_resource_detector entry point podtrace_k8s loads our detector."""
    from importlib.metadata import entry_points

    (ep,) = [
        e for e in entry_points(group="opentelemetry_resource_detector") if e.name == "podtrace_k8s"
    ]
    assert ep.load() is KubernetesResourceDetector


def test_plain_sdk_uses_the_detector_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=podtrace_k8s: Resource.create() has our attributes."""
    monkeypatch.setenv("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "podtrace_k8s")
    monkeypatch.setenv("POD_NAME", "cart-7d9f8c6b5-x2k4p")
    monkeypatch.setenv("POD_NAMESPACE", "shop")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "explicit")
    attrs = Resource.create().attributes
    assert attrs["k8s.deployment.name"] == "cart"
    assert attrs["service.instance.id"] == f"shop/cart-7d9f8c6b5-x2k4p/{os.getpid()}"
    assert attrs["service.name"] == "explicit"
