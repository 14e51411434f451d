"""The optional Kubernetes API lookup against a local server serving recorded JSON."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from podtrace._k8s_api import ApiConfig, K8sApiError, config_from_env, lookup
from tests.library import fake_k8s_api as fake


def _config(url: str, timeout_s: float = 1.0) -> ApiConfig:
    return ApiConfig(base_url=url, token="tok-123", ca_file=None, timeout_s=timeout_s)


def test_lookup_follows_replicaset_to_deployment() -> None:
    """Pod -> ReplicaSet -> Deployment, image, container id, labels, with the bearer token."""
    with fake.FakeKubernetesApi() as api:
        facts = lookup(_config(api.url), fake.NS, fake.POD, "app")
    assert facts.attributes == {
        "k8s.pod.uid": fake.UID,
        "k8s.node.name": "node-1",
        "k8s.container.name": "app",
        "container.image.name": "ghcr.io/shop/cart",
        "container.image.tags": ["1.4.0"],
        "container.id": fake.CTR,
        "k8s.replicaset.name": "cart-7d9f8c6b5",
        "k8s.deployment.name": "cart",
    }
    assert facts.labels["team"] == "a"
    assert facts.image_tag == "1.4.0"
    assert [p for p, _ in api.requests] == [fake.POD_PATH, fake.RS_PATH]
    assert {auth for _, auth in api.requests} == {"Bearer tok-123"}


def test_ambiguous_container_gives_no_image() -> None:
    """Two containers and no container name: no image or container id is guessed."""
    with fake.FakeKubernetesApi() as api:
        facts = lookup(_config(api.url), fake.NS, fake.POD, None)
    assert "container.image.name" not in facts.attributes
    assert "container.id" not in facts.attributes
    assert facts.attributes["k8s.deployment.name"] == "cart"


@pytest.mark.parametrize(
    "route",
    [
        pytest.param((403, {"kind": "Status", "reason": "Forbidden"}, 0.0), id="forbidden"),
        pytest.param((500, {"kind": "Status"}, 0.0), id="server-error"),
        pytest.param((200, b"not json", 0.0), id="malformed-json"),
        pytest.param((200, ["a", "list"], 0.0), id="not-an-object"),
    ],
)
def test_pod_failure_raises_clear_error(route: fake.Route) -> None:
    """A failing pod GET is a K8sApiError naming the request."""
    with (
        fake.FakeKubernetesApi({fake.POD_PATH: route}) as api,
        pytest.raises(K8sApiError, match="pods"),
    ):
        lookup(_config(api.url), fake.NS, fake.POD, "app")


def test_slow_api_is_cut_at_the_deadline() -> None:
    """An API slower than the budget costs at most the budget (here 0.3 s)."""
    routes = {fake.POD_PATH: (200, fake.POD_JSON, 2.0)}
    with fake.FakeKubernetesApi(routes) as api:
        start = time.monotonic()
        with pytest.raises(K8sApiError, match=r"no answer|timed out"):
            lookup(_config(api.url, timeout_s=0.3), fake.NS, fake.POD, "app")
        assert time.monotonic() - start < 0.9


def test_slow_owner_keeps_what_the_pod_said() -> None:
    """A slow ReplicaSet GET past the deadline: the pod's own facts are still returned."""
    routes = fake.default_routes()
    routes[fake.RS_PATH] = (200, fake.REPLICASET_JSON, 2.0)
    with fake.FakeKubernetesApi(routes) as api:
        start = time.monotonic()
        try:
            facts = lookup(_config(api.url, timeout_s=0.3), fake.NS, fake.POD, "app")
        except K8sApiError:
            facts = None
        assert time.monotonic() - start < 0.9
    # Either the thread finished with a socket timeout (partial facts) or the deadline hit first.
    if facts is not None:
        assert facts.attributes["k8s.replicaset.name"] == "cart-7d9f8c6b5"
        assert "k8s.deployment.name" not in facts.attributes


def test_refused_connection() -> None:
    """Nothing listening: a clear error, fast."""
    with pytest.raises(K8sApiError):
        lookup(_config("http://127.0.0.1:9"), fake.NS, fake.POD, "app")


def test_config_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Address from KUBERNETES_SERVICE_HOST/PORT, token and CA from the service-account dir."""
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    assert config_from_env(tmp_path) is None
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    monkeypatch.setenv("PODTRACE_K8S_API_TIMEOUT_S", "5")
    config = config_from_env(tmp_path)
    assert config == ApiConfig("https://10.0.0.1:6443", "tok", str(tmp_path / "ca.crt"), 1.0)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert config_from_env(tmp_path).base_url == "https://[fd00::1]:6443"  # type: ignore[union-attr]
    monkeypatch.setenv("PODTRACE_K8S_API_URL", "http://127.0.0.1:8001/")
    assert config_from_env(tmp_path).base_url == "http://127.0.0.1:8001"  # type: ignore[union-attr]
