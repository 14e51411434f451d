"""Workload derivations from labels and names."""

from __future__ import annotations

import pytest

from podtrace._k8s_derive import (
    Attributes,
    annotation_attributes,
    derive_owners,
    derive_service,
    label_attributes,
    split_image,
)


@pytest.mark.parametrize(
    ("pod", "labels", "expected"),
    [
        pytest.param(
            "cart-7d9f8c6b5-x2k4p",
            {"pod-template-hash": "7d9f8c6b5"},
            {"k8s.replicaset.name": "cart-7d9f8c6b5", "k8s.deployment.name": "cart"},
            id="deployment-from-label",
        ),
        pytest.param(
            "shop-cart-7d9f8c6b5-x2k4p",
            {},
            {"k8s.replicaset.name": "shop-cart-7d9f8c6b5", "k8s.deployment.name": "shop-cart"},
            id="deployment-from-name-alone",
        ),
        pytest.param("web-0", {}, {}, id="statefulset-name-alone-is-not-guessed"),
        pytest.param(
            "web-2",
            {
                "controller-revision-hash": "web-6d4f5c8b9",
                "statefulset.kubernetes.io/pod-name": "web-2",
            },
            {"k8s.statefulset.name": "web"},
            id="statefulset-from-labels",
        ),
        pytest.param(
            "node-exporter-x2k4p",
            {"controller-revision-hash": "6d4f5c8b9", "pod-template-generation": "3"},
            {"k8s.daemonset.name": "node-exporter"},
            id="daemonset-from-labels",
        ),
        pytest.param("node-exporter-x2k4p", {}, {}, id="daemonset-without-labels-not-a-replicaset"),
        pytest.param(
            "backup-28930140-x2k4p",
            {"job-name": "backup-28930140"},
            {"k8s.job.name": "backup-28930140", "k8s.cronjob.name": "backup"},
            id="cronjob-from-job-name",
        ),
        pytest.param(
            "migrate-x2k4p",
            {"batch.kubernetes.io/job-name": "migrate"},
            {"k8s.job.name": "migrate"},
            id="plain-job",
        ),
        pytest.param("laptop", {}, {}, id="hostname-like-name"),
        pytest.param("my-app-hello-world", {}, {}, id="words-are-not-hashes"),
    ],
)
def test_derive_owners(pod: str, labels: dict[str, str], expected: Attributes) -> None:
    """Owner names are derived only when the evidence is unambiguous."""
    attrs: Attributes = {"k8s.pod.name": pod}
    derive_owners(attrs, labels)
    del attrs["k8s.pod.name"]
    assert attrs == expected


def test_derive_owners_keeps_facts() -> None:
    """A known replicaset or deployment is never overwritten by a guess."""
    attrs: Attributes = {
        "k8s.pod.name": "cart-7d9f8c6b5-x2k4p",
        "k8s.replicaset.name": "cart-v2-7d9f8c6b5",
        "k8s.deployment.name": "cart-v2",
    }
    derive_owners(attrs, {"pod-template-hash": "7d9f8c6b5"})
    assert attrs["k8s.deployment.name"] == "cart-v2"
    assert attrs["k8s.replicaset.name"] == "cart-v2-7d9f8c6b5"


@pytest.mark.parametrize(
    ("labels", "annotations", "tag", "expected"),
    [
        (
            {"app.kubernetes.io/instance": "inst", "app.kubernetes.io/name": "nm"},
            {"resource.opentelemetry.io/service.name": "ann"},
            None,
            {"service.name": "ann"},
        ),
        (
            {"app.kubernetes.io/instance": "inst", "app.kubernetes.io/name": "nm"},
            {},
            None,
            {"service.name": "inst"},
        ),
        ({"app.kubernetes.io/name": "nm"}, {}, None, {"service.name": "nm"}),
        ({}, {}, None, {"service.name": "cart"}),
        (
            {"app.kubernetes.io/version": "1.2.0"},
            {"resource.opentelemetry.io/service.version": "1.3.0"},
            "1.4.0",
            {"service.name": "cart", "service.version": "1.3.0"},
        ),
        (
            {"app.kubernetes.io/version": "1.2.0"},
            {},
            "1.4.0",
            {"service.name": "cart", "service.version": "1.2.0"},
        ),
        ({}, {}, "1.4.0", {"service.name": "cart", "service.version": "1.4.0"}),
        ({}, {}, "latest", {"service.name": "cart"}),
    ],
)
def test_derive_service(
    labels: dict[str, str], annotations: dict[str, str], tag: str | None, expected: Attributes
) -> None:
    """service.name: annotation, instance, name, owner; service.version: annotation, label, tag."""
    attrs: Attributes = {"k8s.deployment.name": "cart"}
    derive_service(attrs, labels, annotations, tag)
    del attrs["k8s.deployment.name"]
    assert attrs == expected


def test_annotation_attributes() -> None:
    """resource.opentelemetry.io/<key> annotations become attributes; others do not."""
    got = annotation_attributes(
        {
            "resource.opentelemetry.io/deployment.environment.name": "prod",
            "resource.opentelemetry.io/": "ignored",
            "other/x": "y",
        }
    )
    assert got == {"deployment.environment.name": "prod"}


@pytest.mark.parametrize(
    ("opt_in", "keys"),
    [
        (None, {"pod-template-hash"}),
        ("team", {"pod-template-hash", "team"}),
        (" team , tier ", {"pod-template-hash", "team", "tier"}),
        ("*", {"pod-template-hash", "team", "tier", "app"}),
    ],
)
def test_label_attributes(opt_in: str | None, keys: set[str]) -> None:
    """Revision labels always; other labels only when opted in."""
    labels = {"pod-template-hash": "7d9f8c6b5", "team": "a", "tier": "web", "app": "cart"}
    got = label_attributes(labels, opt_in)
    assert set(got) == {f"k8s.pod.label.{k}" for k in keys}


@pytest.mark.parametrize(
    ("image", "name", "tag"),
    [
        ("ghcr.io/shop/cart:1.4.0", "ghcr.io/shop/cart", "1.4.0"),
        ("registry:5000/cart", "registry:5000/cart", None),
        ("registry:5000/cart:2", "registry:5000/cart", "2"),
        ("cart@sha256:abcd", "cart", None),
        ("cart:1.0@sha256:abcd", "cart", "1.0"),
        ("nginx", "nginx", None),
    ],
)
def test_split_image(image: str, name: str, tag: str | None) -> None:
    """Image references split into name and tag, registry ports and digests handled."""
    assert split_image(image) == (name, tag)
