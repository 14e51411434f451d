"""Collector configuration: flags, PODTRACE_* variables, durations, sizes, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from podtrace_collector.config import (
    CollectorConfig,
    build_parser,
    load_config,
    parse_duration,
    parse_size,
)
from podtrace_collector.errors import ConfigError


def test_defaults_match_the_spec() -> None:
    """Gateway mode, localhost, the OTLP ports, SQLite under the working directory."""
    config = load_config([], {})
    assert (config.mode, config.bind) == ("gateway", "127.0.0.1")
    assert (config.grpc_port, config.http_port, config.api_port) == (4317, 4318, 4320)
    assert config.store == "sqlite:///./podtrace.db"
    assert config.trace_timeout_s == 10.0 and config.retention_s == 7 * 86400
    assert config.max_body_bytes == 16 * 1024 * 1024


def test_every_flag_reads_its_environment_variable() -> None:
    """Each --flag has a PODTRACE_FLAG variable; the parser and the variables agree."""
    flags = [a.option_strings[0] for a in build_parser()._actions if a.option_strings[0] != "-h"]
    env = {
        "PODTRACE_MODE": "sidecar",
        "PODTRACE_BIND": "0.0.0.0",
        "PODTRACE_GRPC_PORT": "1",
        "PODTRACE_HTTP_PORT": "2",
        "PODTRACE_API_PORT": "3",
        "PODTRACE_STORE": "memory",
        "PODTRACE_FORWARD": "gw-a:4317, http://gw-b:4318/v1/traces",
        "PODTRACE_FORWARD_METRICS": "http://otel:4318",
        "PODTRACE_FORWARD_LOGS": "otel:4317,http://logs:4318",
        "PODTRACE_TRACE_TIMEOUT": "30s",
        "PODTRACE_PAIR_WAIT": "1m",
        "PODTRACE_API_TOKEN": "api",
        "PODTRACE_API_ALLOWED_HOSTS": "podtrace-api.podtrace, .example.com",
        "PODTRACE_OTLP_TOKEN": "otlp",
        "PODTRACE_FORWARD_TOKEN": "fwd",
        "PODTRACE_MAX_BODY_BYTES": "1MiB",
        "PODTRACE_MEMORY_LIMIT": "64MiB",
        "PODTRACE_MAX_BUFFERED_SPANS": "1_000",
        "PODTRACE_RETENTION": "2d",
        "PODTRACE_FORWARD_QUEUE_SPANS": "500",
        "PODTRACE_RESOLVE_INTERVAL": "5m",
        "PODTRACE_DRAIN_TIMEOUT": "3s",
        "PODTRACE_FORWARD_RETRY_MAX": "500ms",
        "PODTRACE_MAX_NEW_REVISIONS": "50",
        "PODTRACE_LOG_LEVEL": "DEBUG",
    }
    assert sorted(f"PODTRACE_{f[2:].replace('-', '_').upper()}" for f in flags) == sorted(env)
    config = load_config([], env)
    assert config == CollectorConfig(
        mode="sidecar",
        bind="0.0.0.0",
        grpc_port=1,
        http_port=2,
        api_port=3,
        store="memory",
        forward=("gw-a:4317", "http://gw-b:4318/v1/traces"),
        forward_metrics=("http://otel:4318",),
        forward_logs=("otel:4317", "http://logs:4318"),
        trace_timeout_s=30.0,
        pair_wait_s=60.0,
        api_token="api",
        api_allowed_hosts=("podtrace-api.podtrace", ".example.com"),
        otlp_token="otlp",
        forward_token="fwd",
        max_body_bytes=1024 * 1024,
        memory_limit_bytes=64 * 1024 * 1024,
        max_buffered_spans=1000,
        retention_s=2 * 86400.0,
        forward_queue_spans=500,
        resolve_interval_s=300.0,
        drain_timeout_s=3.0,
        forward_retry_max_s=0.5,
        max_new_revisions=50,
        log_level="debug",
    )


def test_command_line_wins_over_environment() -> None:
    """A flag overrides its variable; --forward repeats and splits on commas."""
    argv = ["--grpc-port", "0", "--forward", "a:1,b:2", "--forward", "c:3"]
    config = load_config(argv, {"PODTRACE_GRPC_PORT": "9", "PODTRACE_FORWARD": "z:9"})
    assert config.grpc_port == 0
    assert config.forward == ("a:1", "b:2", "c:3")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10),
        ("5m", 300),
        ("2h", 7200),
        ("7d", 604800),
        ("1.5", 1.5),
        (" 3S ", 3),
        ("1w", 604800),  # the query parameters' grammar: one for both
        ("1h30m", 5400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    """Durations with units; a bare number is seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("64KB", 64000),
        ("64KiB", 65536),
        ("16MiB", 16 << 20),
        ("1GiB", 1 << 30),
        ("2M", 2 << 20),
    ],
)
def test_sizes(text: str, size: int) -> None:
    """Sizes in decimal or binary units."""
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--trace-timeout", "10x"], "--trace-timeout: '10x' is not a duration"),
        (["--memory-limit=-5MiB"], "--memory-limit"),
        (["--grpc-port", "70000"], "--grpc-port must be 0..65535"),
        (["--store", "postgres://x"], "--store: bad store URL"),
        (["--log-level", "loud"], "--log-level"),
        (["--forward-queue-spans", "0"], "--forward-queue-spans must be positive"),
        (["--max-buffered-spans", "many"], "is not an integer"),
    ],
)
def test_errors_name_the_flag(argv: list[str], message: str) -> None:
    """A bad value raises ConfigError naming the flag."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(argv, {})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PODTRACE_API_PORT": "abc"}, "'abc' is not an integer (from $PODTRACE_API_PORT)"),
        ({"PODTRACE_GRPC_PORT": "70000"}, "must be 0..65535, not 70000 (from $PODTRACE_GRPC_PORT)"),
        ({"PODTRACE_TRACE_TIMEOUT": "soon"}, "(from $PODTRACE_TRACE_TIMEOUT)"),
        ({"PODTRACE_MEMORY_LIMIT": "lots"}, "(from $PODTRACE_MEMORY_LIMIT)"),
        ({"PODTRACE_LOG_LEVEL": "loud"}, "(from $PODTRACE_LOG_LEVEL)"),
    ],
)  # fmt: skip
def test_errors_name_the_variable_that_set_the_flag(environ: dict[str, str], message: str) -> None:
    """A bad value from the environment names the variable as well as the flag."""
    with pytest.raises(ConfigError) as caught:
        load_config([], environ)
    assert message in str(caught.value)


def test_a_flag_on_the_command_line_is_not_blamed_on_the_environment() -> None:
    """When the flag was typed, the error does not mention the (unused) variable."""
    with pytest.raises(ConfigError) as caught:
        load_config(["--api-port", "abc"], {"PODTRACE_API_PORT": "4320"})
    assert str(caught.value) == "--api-port: 'abc' is not an integer"


def test_the_command_names_the_variable(tmp_path: Path) -> None:
    """`PODTRACE_API_PORT=abc podtrace collector`: one line naming the variable, exit 2."""
    env = {**os.environ, "PODTRACE_API_PORT": "abc"}
    proc = subprocess.run(
        [sys.executable, "-m", "podtrace._cli", "collector"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "podtrace collector: --api-port: 'abc' is not an integer (from $PODTRACE_API_PORT)\n"
    )


@pytest.mark.parametrize("text", ["", "ms", "1x", "-5s", "1h-30m", "1e400s"])
def test_bad_durations_name_the_flag(text: str) -> None:
    """Anything that is not a duration is a ConfigError naming the flag."""
    with pytest.raises(ConfigError, match="--retention"):
        parse_duration(text, flag="retention")


def test_retention_takes_weeks() -> None:
    """``--retention 1w`` works as ``since=1w`` does."""
    assert load_config(["--retention", "1w"], {}).retention_s == 7 * 86400
