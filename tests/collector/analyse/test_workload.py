"""Tests for analyse.workload: workload and revision of a span's resource (SPEC §4)."""

from __future__ import annotations

import pytest
from podtrace_collector.analyse import workload as workload_module
from podtrace_collector.analyse.workload import WorkloadInfo, derive_workload, workload_of
from podtrace_collector.model import AttrValue, Resource

from tests.collector.analyse.tracebuilder import daemonset, deployment, service, statefulset

NS = {"k8s.namespace.name": "shop"}


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        pytest.param(
            {
                **NS,
                "k8s.deployment.name": "cart",
                "k8s.replicaset.name": "cart-7d9f8c6b5",
                "k8s.pod.name": "cart-7d9f8c6b5-x2x9z",
                "service.name": "cart",
                "service.version": "1.4.0",
            },
            ("shop/cart", "7d9f8c6b5", "Deployment", "cart", "1.4.0", "cart-7d9f8c6b5-x2x9z"),
            id="deployment-all-attributes",
        ),
        pytest.param(
            {**NS, "k8s.deployment.name": "cart", "k8s.pod.name": "cart-7d9f8c6b5-x2x9z"},
            ("shop/cart", "7d9f8c6b5", "Deployment", "cart", "", "cart-7d9f8c6b5-x2x9z"),
            id="deployment-hash-from-pod-name",
        ),
        pytest.param(
            {**NS, "k8s.replicaset.name": "my-cart-7d9f8c6b5"},
            ("shop/my-cart", "7d9f8c6b5", "Deployment", "my-cart", "", ""),
            id="deployment-derived-from-replicaset",
        ),
        pytest.param(
            {**NS, "k8s.pod.name": "my-cart-7d9f8c6b5-x2x9z", "service.name": "cart"},
            ("shop/my-cart", "7d9f8c6b5", "Deployment", "cart", "", "my-cart-7d9f8c6b5-x2x9z"),
            id="deployment-derived-from-pod-name",
        ),
        pytest.param(
            {
                **NS,
                "k8s.deployment.name": "cart",
                "k8s.pod.label.pod-template-hash": "abc12",
                "k8s.pod.name": "weird",
            },
            ("shop/cart", "abc12", "Deployment", "cart", "", "weird"),
            id="deployment-hash-from-label",
        ),
        pytest.param(
            {**NS, "k8s.deployment.name": "cart", "service.version": "2.0"},
            ("shop/cart", "2.0", "Deployment", "cart", "2.0", ""),
            id="deployment-without-hash-uses-version",
        ),
        pytest.param(
            {
                **NS,
                "k8s.statefulset.name": "db",
                "k8s.pod.name": "db-0",
                "k8s.pod.label.controller-revision-hash": "db-6d4c9b7f5",
                "service.version": "15",
            },
            ("shop/db", "db-6d4c9b7f5", "StatefulSet", "db", "15", "db-0"),
            id="statefulset-revision-label",
        ),
        pytest.param(
            {**NS, "k8s.statefulset.name": "db", "k8s.pod.name": "db-0", "service.version": "15"},
            ("shop/db", "15", "StatefulSet", "db", "15", "db-0"),
            id="statefulset-version",
        ),
        pytest.param(
            {**NS, "k8s.daemonset.name": "agent", "k8s.pod.label.controller-revision-hash": "7c9"},
            ("shop/agent", "7c9", "DaemonSet", "agent", "", ""),
            id="daemonset-revision-label",
        ),
        pytest.param(
            {
                **NS,
                "k8s.cronjob.name": "report",
                "k8s.job.name": "report-2901",
                "service.version": "3",
            },
            ("shop/report", "3", "CronJob", "report", "3", ""),
            id="cronjob",
        ),
        pytest.param(
            {**NS, "k8s.pod.name": "debug", "service.name": "tool"},
            ("shop/tool", "unknown", "Pod", "tool", "", "debug"),
            id="bare-pod",
        ),
        pytest.param(
            {"service.name": "legacy", "service.namespace": "billing", "service.version": "9"},
            ("billing/legacy", "9", "Service", "legacy", "9", ""),
            id="non-kubernetes",
        ),
        pytest.param(
            {"service.name": "legacy", "service.instance.id": "vm-3"},
            ("default/legacy", "unknown", "Service", "legacy", "", "vm-3"),
            id="non-kubernetes-defaults",
        ),
        pytest.param(
            {"service.name": "unknown_service:python"},
            ("default/unknown", "unknown", "Service", "unknown", "", ""),
            id="sdk-placeholder-name",
        ),
        pytest.param(
            {"k8s.deployment.name": "cart", "k8s.replicaset.name": "cart-abc"},
            ("default/cart", "abc", "Deployment", "cart", "", ""),
            id="kubernetes-without-namespace",
        ),
    ],
)
def test_derivation(attrs: dict[str, AttrValue], expected: tuple[str, ...]) -> None:
    """Each resource shape yields the documented workload, revision, kind, service, version, pod."""
    assert tuple(derive_workload(attrs)) == expected


def test_builder_resources() -> None:
    """The test DSL's resources resolve as their names say."""
    assert workload_of(deployment("shop", "cart", "7d9f8c6b5"))[:3] == (
        "shop/cart",
        "7d9f8c6b5",
        "Deployment",
    )
    assert workload_of(deployment("shop", "cart", "7d9f8c6b5", via="pod"))[:2] == (
        "shop/cart",
        "7d9f8c6b5",
    )
    assert workload_of(statefulset("shop", "db", "db-1"))[:3] == ("shop/db", "db-1", "StatefulSet")
    assert workload_of(daemonset("shop", "agent"))[:3] == ("shop/agent", "1.0.0", "DaemonSet")
    assert workload_of(service("api", version="2"))[:3] == ("default/api", "2", "Service")


def test_cached_per_resource_key() -> None:
    """Equal resources share one cached result; a different resource gets its own."""
    a = workload_of(Resource({"service.name": "x"}))
    b = workload_of(Resource({"service.name": "x"}))
    c = workload_of(Resource({"service.name": "y"}))
    assert a is b
    assert isinstance(c, WorkloadInfo) and c.workload == "default/y"


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither cache grows past its size, and results stay right after evictions."""
    monkeypatch.setattr(workload_module, "CACHE_SIZE", 8)
    monkeypatch.setattr(workload_module, "IDENTITY_CACHE_SIZE", 8)
    resources = [Resource({"service.name": f"svc-{i}"}) for i in range(50)]
    for _ in range(2):
        for i, resource in enumerate(resources):
            assert workload_of(resource).workload == f"default/svc-{i}"
    assert len(workload_module._cache) <= 8
    assert len(workload_module._by_identity) <= 8


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ("cart-7d9f8c6b5-x7k2p", ("shop/cart", "7d9f8c6b5", "Deployment")),
        ("web-api-6f8b9c7d4-q2wzp", ("shop/web-api", "6f8b9c7d4", "Deployment")),
        # Not a Deployment's pod: words and numbers are not of Kubernetes' vowel-free alphabet.
        ("node-exporter-x7kq2", ("shop/node-exporter-x7kq2", "unknown", "Pod")),
        ("my-job-28373640-x7kq2", ("shop/my-job-28373640-x7kq2", "unknown", "Pod")),
        ("fluent-bit-x7kq2", ("shop/fluent-bit-x7kq2", "unknown", "Pod")),
    ],
)
def test_pod_name_alone(pod: str, expected: tuple[str, str, str]) -> None:
    """A bare pod name is split into deployment and hash only when it has Kubernetes' shape."""
    info = derive_workload({"k8s.namespace.name": "shop", "k8s.pod.name": pod})
    assert (info.workload, info.revision, info.kind) == expected
