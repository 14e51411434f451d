"""OTLP endpoint URLs: HOST:PORT means http://, anything else not http(s) is refused clearly."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace

import podtrace
from podtrace._endpoints import EndpointError, grpc_target, http_from_environment, http_traces_url
from tests.library.otlp_receiver import OtlpReceiver


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://gw:4318", "http://gw:4318/v1/traces"),
        ("http://gw:4318/", "http://gw:4318/v1/traces"),
        ("http://gw:4318/v1/traces", "http://gw:4318/v1/traces"),
        ("https://otlp.example.com", "https://otlp.example.com/v1/traces"),
        ("127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
        ("[::1]:4318", "http://[::1]:4318/v1/traces"),
        ("  gw:4318  ", "http://gw:4318/v1/traces"),
    ],
)
def test_http_traces_url(given: str, url: str) -> None:
    """A base URL gets /v1/traces once; a bare HOST:PORT gets http://."""
    assert http_traces_url(given) == url


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("ftp://gw:4318", "scheme must be http or https"),
        ("grpc://gw:4317", "scheme must be http or https"),
        ("gw", "has no scheme"),
        ("http://:4318", "has no host"),
        ("", "has no host"),
        ("http://gw:port", "port must be a number"),
        ("gw:99999", "port must be a number"),
    ],
)
def test_what_is_not_a_url_is_refused_with_the_reason(given: str, says: str) -> None:
    """Each refusal names the value, says what is wrong and shows what a good one looks like."""
    for check in (http_traces_url, grpc_target):
        with pytest.raises(EndpointError) as caught:
            check(given, what="--endpoint")
        assert says in str(caught.value) and repr(given) in str(caught.value)
        assert str(caught.value).startswith("--endpoint ")


def test_grpc_host_port_is_plaintext_and_https_is_kept() -> None:
    """gRPC HOST:PORT means plaintext (the sidecar); an https:// URL stays TLS."""
    assert grpc_target("gw:4317") == "http://gw:4317"
    assert grpc_target("https://gw:4317") == "https://gw:4317"


@pytest.mark.parametrize(
    ("variables", "found"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://gw:4318"}, "http://gw:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "gw:4318"}, "http://gw:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://gw:4318/custom"}, "http://gw:4318/custom"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "gw:4318"}, "http://gw:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://a:1/t",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "x",
            },
            "http://a:1/t",
        ),
    ],
)
def test_http_endpoint_from_the_standard_variables(
    variables: dict[str, str], found: str | None
) -> None:
    """The signal variable is the full URL, the general one a base; HOST:PORT is a base."""
    result = http_from_environment(variables)
    assert (result.url if result else None) == found


def test_a_bad_variable_is_named() -> None:
    """An unusable value in a standard variable is refused naming the variable."""
    with pytest.raises(EndpointError) as caught:
        http_from_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "gw:x"})
    assert str(caught.value).startswith("OTEL_EXPORTER_OTLP_ENDPOINT 'gw:x': the port")


def test_init_exports_to_a_bare_host_port(receiver: OtlpReceiver) -> None:
    """init(endpoint="127.0.0.1:PORT") over OTLP/HTTP reaches the collector."""
    provider = podtrace.init("bare", endpoint=f"127.0.0.1:{receiver.http_port}", instrument=False)
    trace.get_tracer("t").start_span("over-http").end()
    provider.force_flush()
    (span,) = receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)
    assert span.name == "over-http" and span.transport == "http"


def test_a_bare_variable_is_fixed_with_a_warning(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT=HOST:PORT exports over http://, and says so once."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"127.0.0.1:{receiver.http_port}")
    with caplog.at_level(logging.WARNING, logger="podtrace"):
        provider = podtrace.init("bare-env", instrument=False)
    trace.get_tracer("t").start_span("from-env").end()
    provider.force_flush()
    assert receiver.wait_for(lambda s: len(s) >= 1, timeout_s=5)[0].name == "from-env"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT has no scheme" in caplog.text


def test_init_with_an_unusable_endpoint_runs_the_app_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bad endpoint is not raised into the app: one clear warning, nothing exported."""
    with caplog.at_level(logging.WARNING, logger="podtrace"):
        podtrace.init("bad", endpoint="ftp://gw:4318", instrument=False)
    trace.get_tracer("t").start_span("nowhere").end()
    assert "endpoint 'ftp://gw:4318': the scheme must be http or https" in caplog.text
    assert "no spans will be exported" in caplog.text
