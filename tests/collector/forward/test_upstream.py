"""Upstream OTLP clients: one export attempt's outcome, against real collectors."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from podtrace_collector.errors import ConfigError
from podtrace_collector.forward.upstream import (
    GrpcExporter,
    HttpExporter,
    Target,
    make_exporter,
    parse_target,
    retry_after_s,
)
from podtrace_collector.signals import LOGS, METRICS, TRACES, Signal

from tests.collector.otlp_helpers import RecordingSink, make_request, running, test_config


def _body_with_one_bad_span() -> bytes:
    request = make_request(3, seed=40)
    request.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01"
    return request.SerializeToString()


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_success_reports_upstream_rejections(kind: str) -> None:
    """A 200/OK with partial_success reports how many spans the upstream rejected."""
    with running(sink=RecordingSink()) as collector:
        if kind == "grpc":
            exporter = GrpcExporter(
                Target("grpc", "127.0.0.1", collector.grpc_port or 0),
                token=None,
                max_message_bytes=1 << 20,
            )
        else:
            exporter = HttpExporter(
                Target("http", "127.0.0.1", collector.http_port or 0), token=None
            )
        try:
            outcome = exporter.send(_body_with_one_bad_span(), timeout_s=5)
        finally:
            exporter.close()
    assert outcome.ok and outcome.rejected == 1


def test_grpc_overload_is_retryable_with_the_servers_delay() -> None:
    """RESOURCE_EXHAUSTED with RetryInfo: retryable, with the delay the server asked for."""
    sink = RecordingSink()
    sink.overloaded = True
    with running(sink=sink) as collector:
        exporter = GrpcExporter(
            Target("grpc", "127.0.0.1", collector.grpc_port or 0),
            token=None,
            max_message_bytes=1 << 20,
        )
        outcome = exporter.send(make_request(2).SerializeToString(), timeout_s=5)
        exporter.close()
    assert not outcome.ok and outcome.retryable
    assert outcome.retry_after_s == 1.0 and outcome.reason == "grpc_resource_exhausted"


def test_http_answers() -> None:
    """HTTP 429 is retryable with Retry-After; 400 is permanent; a refused connection retryable."""
    sink = RecordingSink()
    with running(sink=sink) as collector:
        exporter = HttpExporter(Target("http", "127.0.0.1", collector.http_port or 0), token=None)
        sink.overloaded = True
        busy = exporter.send(make_request(2).SerializeToString(), timeout_s=5)
        sink.overloaded = False
        bad = exporter.send(b"\xff\xff", timeout_s=5)
        exporter.close()
    assert busy.retryable and busy.retry_after_s == 1.0 and busy.reason == "http_429"
    assert not bad.ok and not bad.retryable and bad.reason == "http_400"
    down = HttpExporter(Target("http", "127.0.0.1", 9), token=None)
    refused = down.send(b"", timeout_s=2)
    down.close()
    assert not refused.ok and refused.retryable


def test_grpc_token_is_sent() -> None:
    """The forward token is sent as a bearer token."""
    with running(test_config(otlp_token="abc"), sink=RecordingSink()) as collector:
        target = Target("grpc", "127.0.0.1", collector.grpc_port or 0)
        good = GrpcExporter(target, token="abc", max_message_bytes=1 << 20)
        bad = GrpcExporter(target, token="nope", max_message_bytes=1 << 20)
        assert good.send(make_request(1).SerializeToString(), timeout_s=5).ok
        denied = bad.send(make_request(1).SerializeToString(), timeout_s=5)
        good.close()
        bad.close()
    assert not denied.retryable and denied.reason == "grpc_unauthenticated"


def test_grpc_message_too_large_is_permanent() -> None:
    """RESOURCE_EXHAUSTED without RetryInfo (message over the upstream's limit) is not retried."""
    with running(test_config(max_body_bytes=16 * 1024), sink=RecordingSink()) as collector:
        target = Target("grpc", "127.0.0.1", collector.grpc_port or 0)
        exporter = GrpcExporter(target, token=None, max_message_bytes=1 << 20)
        outcome = exporter.send(make_request(300).SerializeToString(), timeout_s=5)
        exporter.close()
    assert outcome.reason == "grpc_resource_exhausted"
    assert not outcome.retryable and outcome.retry_after_s is None


class TestRetryAfter:
    """``Retry-After`` in seconds or as an HTTP-date (RFC 9110)."""

    NOW = 1_764_000_000.0  # 2025-11-24T16:00:00Z

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("7", 7.0),
            ("0.5", 0.5),
            ("-3", 0.0),
            ("Mon, 24 Nov 2025 16:00:30 GMT", 30.0),
            ("Mon, 24 Nov 2025 15:59:00 GMT", 0.0),  # in the past: retry now
            (None, None),
            ("", None),
            ("soon", None),
        ],
    )
    def test_seconds_and_dates(self, header: str | None, expected: float | None) -> None:
        """Seconds are taken as they are; a date counts from now; garbage falls back."""
        assert retry_after_s(header, now_s=self.NOW) == expected


class TestTargetsPerSignal:
    @pytest.mark.parametrize(
        ("url", "signal", "path"),
        [
            ("http://collector:4318", METRICS, "/v1/metrics"),
            ("http://collector:4318/", LOGS, "/v1/logs"),
            ("https://vendor.example/otlp/v1/metrics", METRICS, "/otlp/v1/metrics"),
            ("http://prometheus:9090/api/v1/otlp/v1/metrics", METRICS, "/api/v1/otlp/v1/metrics"),
            ("http://collector:4318", TRACES, "/v1/traces"),
        ],
    )
    def test_http_paths_default_to_the_signals(self, url: str, signal: Signal, path: str) -> None:
        """A base URL gets the signal's path, as OTLP exporters do; a given path is kept."""
        assert parse_target(url, signal=signal).path == path

    @pytest.mark.parametrize(
        ("url", "signal", "flag"),
        [
            ("http://collector:4318/v1/traces", METRICS, "--forward-metrics"),
            ("http://collector:4318/v1/metrics", LOGS, "--forward-logs"),
            ("http://collector:4318/v1/logs", TRACES, "--forward"),
            ("ftp://collector", LOGS, "--forward-logs"),
            ("collector", METRICS, "--forward-metrics"),
        ],
    )
    def test_mistakes_name_the_flag(self, url: str, signal: Signal, flag: str) -> None:
        """Another signal's path, a bad scheme, no port: a ConfigError that names the flag."""
        with pytest.raises(ConfigError, match=f"^{flag} ") as info:
            parse_target(url, signal=signal)
        assert info.value.flag == flag.removeprefix("--")

    def test_grpc_exporters_call_the_signals_service(self) -> None:
        """A gRPC metrics exporter calls MetricsService/Export on the upstream."""
        from tests.collector.signal_receiver import SignalReceiver

        with SignalReceiver() as rx:
            target = parse_target(rx.grpc_url, signal=METRICS)
            exporter = make_exporter(target, token=None, max_message_bytes=1 << 20, signal=METRICS)
            outcome = exporter.send(ExportMetricsServiceRequest().SerializeToString(), timeout_s=5)
            exporter.close()
            assert outcome.ok
            assert [r.transport for r in rx.wait_for("metrics", lambda got: len(got) == 1)] == [
                "grpc"
            ]
