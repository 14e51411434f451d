"""The API port's Host check against DNS rebinding: a table of names, and a real server."""

from __future__ import annotations

import httpx
import pytest
from podtrace_collector.api.hosts import AllowedHosts

from tests.collector.otlp_helpers import running, test_config


async def _app(scope: object, receive: object, send: object) -> None:  # never reached here
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("allowed", "host", "answered"),
    [
        ((), "localhost", True),
        ((), "app.localhost", True),
        ((), "127.0.0.1", True),
        ((), "10.1.2.3", True),
        ((), "[::1]", True),
        ((), "[fe80::1]", True),
        ((), "evil.example", False),
        ((), "localhost.evil.example", False),
        ((), "127.0.0.1.nip.io", False),
        (("podtrace-api.podtrace",), "podtrace-api.podtrace", True),
        (("podtrace-api.podtrace",), "podtrace-api", False),
        ((".example.com",), "example.com", True),
        ((".example.com",), "notexample.com", False),
        ((".example.com",), "api.example.com", True),
        (("Podtrace.Example.",), "podtrace.example", True),
        (("*",), "anything.at.all", True),
    ],
)
def test_allowed_names(allowed: tuple[str, ...], host: str, answered: bool) -> None:
    """IPs and localhost always; configured names exactly, ``.domain`` for subdomains."""
    assert AllowedHosts(_app, allowed=allowed).allows(host) is answered


def _get(port: int, host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/api/v1/workloads", headers={"Host": host})


def test_a_rebound_name_is_refused_on_every_path() -> None:
    """A request for a name the collector does not answer to is a JSON 400, on any path."""
    with running() as collector:
        port = collector.api_port
        refused = _get(port, "evil.example")
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "bad_host"
        assert "--api-allowed-hosts" in refused.json()["error"]["message"]
        for path in ("/", "/metrics", "/healthz"):
            got = httpx.get(f"http://127.0.0.1:{port}{path}", headers={"Host": "evil.example:4320"})
            assert got.status_code == 400
        for host in ("localhost:4320", f"127.0.0.1:{port}", "LOCALHOST"):
            assert _get(port, host).status_code == 200


def test_configured_names_are_answered() -> None:
    """--api-allowed-hosts adds names (the Service's, in a cluster)."""
    config = test_config(api_allowed_hosts=("podtrace-api.podtrace", ".svc.cluster.local"))
    with running(config) as collector:
        port = collector.api_port
        assert _get(port, "podtrace-api.podtrace:4320").status_code == 200
        assert _get(port, "podtrace-api.podtrace.svc.cluster.local").status_code == 200
        assert _get(port, "podtrace-api").status_code == 400
