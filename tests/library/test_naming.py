"""The Kubernetes naming rules shared by the detector and the collector."""

from __future__ import annotations

import pytest

from podtrace import naming


def test_exported_members() -> None:
    """The public names of the naming rules are exactly these."""
    assert naming.__all__ == sorted(naming.__all__)
    assert set(naming.__all__) == {
        "CONTROLLER_REVISION_HASH",
        "CONTROLLER_REVISION_HASH_ATTR",
        "K8S_WORKLOAD_KEYS",
        "OWNER_KEYS",
        "POD_TEMPLATE_HASH",
        "POD_TEMPLATE_HASH_ATTR",
        "REVISION_LABELS",
        "SAFE_ALPHABET",
        "hash_from_pod_tail",
        "is_pod_suffix",
        "is_template_hash",
        "split_pod_name",
        "split_replicaset_name",
    }


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ("cart-7d9f8c6b5-x7kq2", ("cart", "7d9f8c6b5")),
        ("shop-cart-7d9f8c6b5-x7kq2", ("shop-cart", "7d9f8c6b5")),
        ("node-exporter-x7kq2", None),  # a DaemonSet pod: no hash part
        ("my-job-28373640-x7kq2", None),  # a Job pod: digits 0/1/3 are not in the alphabet
        ("cart-7d9f8c6b5-x7kq", None),  # suffix too short
        ("cart-aeiou12-x7kq2", None),  # vowels are never generated
        ("web-0", None),  # a StatefulSet pod
    ],
)
def test_split_pod_name(pod: str, expected: tuple[str, str] | None) -> None:
    """Only names of Kubernetes' generated shape and alphabet split into deployment and hash."""
    assert naming.split_pod_name(pod) == expected


@pytest.mark.parametrize(
    ("replicaset", "expected"),
    [
        ("cart-7d9f8c6b5", ("cart", "7d9f8c6b5")),
        ("shop-cart-abc", ("shop-cart", "abc")),  # trusted: no alphabet check
        ("cart", None),
        ("-abc", None),
        ("cart-", None),
    ],
)
def test_split_replicaset_name(replicaset: str, expected: tuple[str, str] | None) -> None:
    """A ReplicaSet name splits at its last dash when both parts are non-empty."""
    assert naming.split_replicaset_name(replicaset) == expected


@pytest.mark.parametrize(
    ("tail", "expected"),
    [("7d9f8c6b5-x7kq2", "7d9f8c6b5"), ("7d9f8c6b5", ""), ("a-b-x7kq2", ""), ("abc-x7k", "")],
)
def test_hash_from_pod_tail(tail: str, expected: str) -> None:
    """After a known deployment name, ``<hash>-<5 chars>`` gives the hash."""
    assert naming.hash_from_pod_tail(tail) == expected


def test_alphabet_predicates() -> None:
    """Suffix and hash predicates follow rand.SafeEncodeString's alphabet and lengths."""
    assert naming.is_pod_suffix("x7kq2") and not naming.is_pod_suffix("x7kq0")
    assert naming.is_template_hash("7d9f8c6b5") and not naming.is_template_hash("7d9f")
    assert naming.K8S_WORKLOAD_KEYS[:2] == ("k8s.namespace.name", "k8s.pod.name")
