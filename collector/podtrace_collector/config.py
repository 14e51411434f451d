"""The collector's configuration: command-line flags, ``PODTRACE_*`` variables, defaults.

Every flag ``--some-flag`` also reads ``PODTRACE_SOME_FLAG``; the command line wins over the
environment, which wins over the default.  ``--forward``, ``--forward-metrics``,
``--forward-logs`` and ``--api-allowed-hosts`` may be repeated on the command line, or given as a
comma-separated list in their variable.  Durations are ``500ms``, ``10s``, ``5m``, ``2h``, ``7d``
(a bare number is seconds); sizes are ``1024``, ``64KB``, ``64KiB``, ``16MiB``, ``1GiB``
(``K``/``M``/``G`` alone are binary).  A bad value raises ``ConfigError`` naming the flag, and the
variable too when the value came from the environment.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from podtrace_collector.durations import duration_s
from podtrace_collector.errors import ConfigError
from podtrace_collector.store import check_url

ENV_PREFIX = "PODTRACE_"
MODES = ("gateway", "sidecar")
LOG_LEVELS = ("debug", "info", "warning", "error")
_PORTS = ("grpc_port", "http_port", "api_port")

_BARE_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class CollectorConfig:
    """Everything the collector process is configured with; see ``docs/collector.md``.

    Ports set to 0 pick a free port; ``Collector`` exposes the ports actually bound.
    """

    mode: str = "gateway"
    bind: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    api_port: int = 4320
    store: str = "sqlite:///./podtrace.db"
    forward: tuple[str, ...] = ()
    forward_metrics: tuple[str, ...] = ()
    forward_logs: tuple[str, ...] = ()
    trace_timeout_s: float = 10.0
    pair_wait_s: float = 30.0
    api_token: str | None = None
    api_allowed_hosts: tuple[str, ...] = ()
    otlp_token: str | None = None
    forward_token: str | None = None
    max_body_bytes: int = 16 * 1024**2
    memory_limit_bytes: int = 256 * 1024**2
    max_buffered_spans: int = 1_000_000
    retention_s: float = 7 * 86400.0
    forward_queue_spans: int = 100_000
    resolve_interval_s: float = 30.0
    drain_timeout_s: float = 10.0
    forward_retry_max_s: float = 5.0
    max_new_revisions: int = 1000
    log_level: str = "info"

    def __post_init__(self) -> None:
        _validate(self)


def _validate(cfg: CollectorConfig) -> None:
    if cfg.mode not in MODES:
        raise ConfigError(
            f"--mode must be one of {', '.join(MODES)}, not {cfg.mode!r}", flag="mode"
        )
    for name in _PORTS:
        port, flag = getattr(cfg, name), name.replace("_", "-")
        if not 0 <= port <= 65535:
            raise ConfigError(f"--{flag} must be 0..65535, not {port}", flag=flag)
    try:
        check_url(cfg.store)
    except ConfigError as exc:
        raise ConfigError(f"--store: {exc}", flag="store") from None
    if cfg.mode == "sidecar" and not cfg.forward:
        raise ConfigError("--mode sidecar needs at least one --forward gateway URL", flag="mode")
    for flag, (attr, _) in _FLAGS.items():
        value = getattr(cfg, attr)
        if isinstance(value, int | float) and attr not in _PORTS and value <= 0:
            raise ConfigError(f"--{flag} must be positive, not {value}", flag=flag)
    if cfg.log_level not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be one of {', '.join(LOG_LEVELS)}", flag="log-level")


def parse_duration(text: str, *, flag: str = "duration") -> float:
    """Parse a duration (``durations`` grammar: ``500ms``, ``10s``, ``1h30m``, ``1w``) to seconds.

    A bare number is seconds.
    """
    seconds = duration_s(text)
    if seconds is None and _BARE_NUMBER.fullmatch(text.strip()):
        seconds = float(text)
    if seconds is None or not math.isfinite(seconds):
        raise ConfigError(
            f"--{flag}: {text!r} is not a duration like 500ms, 10s, 5m, 2h or 7d", flag=flag
        )
    return seconds


def parse_size(text: str, *, flag: str = "size") -> int:
    """Parse ``1024``/``64KB``/``64KiB``/``16MiB``/``1GiB`` to bytes."""
    match = _NUMBER_UNIT.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise ConfigError(
            f"--{flag}: {text!r} is not a size like 1048576, 64KiB, 16MiB or 1GiB", flag=flag
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_int(text: str, *, flag: str) -> int:
    """Parse a plain integer (``_`` separators allowed)."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise ConfigError(f"--{flag}: {text!r} is not an integer", flag=flag) from None


# flag -> (dataclass field, parser or None for a plain string)
_FLAGS: dict[str, tuple[str, str]] = {
    "mode": ("mode", "str"),
    "bind": ("bind", "str"),
    "grpc-port": ("grpc_port", "int"),
    "http-port": ("http_port", "int"),
    "api-port": ("api_port", "int"),
    "store": ("store", "str"),
    "forward": ("forward", "list"),
    "forward-metrics": ("forward_metrics", "list"),
    "forward-logs": ("forward_logs", "list"),
    "trace-timeout": ("trace_timeout_s", "duration"),
    "pair-wait": ("pair_wait_s", "duration"),
    "api-token": ("api_token", "str"),
    "api-allowed-hosts": ("api_allowed_hosts", "list"),
    "otlp-token": ("otlp_token", "str"),
    "forward-token": ("forward_token", "str"),
    "max-body-bytes": ("max_body_bytes", "size"),
    "memory-limit": ("memory_limit_bytes", "size"),
    "max-buffered-spans": ("max_buffered_spans", "int"),
    "retention": ("retention_s", "duration"),
    "forward-queue-spans": ("forward_queue_spans", "int"),
    "resolve-interval": ("resolve_interval_s", "duration"),
    "drain-timeout": ("drain_timeout_s", "duration"),
    "forward-retry-max": ("forward_retry_max_s", "duration"),
    "max-new-revisions": ("max_new_revisions", "int"),
    "log-level": ("log_level", "str"),
}

_HELP = {
    "mode": "gateway (default: assemble, analyse, store, serve) or sidecar (enrich, forward)",
    "bind": "address the receivers and the API listen on (default 127.0.0.1)",
    "grpc-port": "OTLP/gRPC port (default 4317; 0 picks a free port)",
    "http-port": "OTLP/HTTP port (default 4318; 0 picks a free port)",
    "api-port": "query API, /healthz, /readyz, /metrics (default 4320)",
    "store": "sqlite:///PATH, memory, clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DB or"
    " chdb://PATH (default sqlite:///./podtrace.db)",
    "forward": "OTLP upstream: host:port, grpc://, http(s)://.../v1/traces; repeatable",
    "forward-metrics": "where OTLP metrics received go (every one gets all): host:port,"
    " grpc://, http(s)://HOST[:PORT][/v1/metrics]; repeatable; none: metrics are rejected",
    "forward-logs": "where OTLP logs received go, as --forward-metrics; none: logs are rejected",
    "trace-timeout": "a trace is complete this long after its last span (default 10s)",
    "pair-wait": "how long a request of a trace analysed in pieces waits for its caller's or"
    " callee's span (default 30s)",
    "api-token": "bearer token required on /api and /metrics",
    "api-allowed-hosts": "Host names the API answers besides IPs and localhost"
    " (.domain for subdomains, * for any); repeatable",
    "otlp-token": "bearer token required on the OTLP receivers",
    "forward-token": "bearer token sent to --forward upstreams",
    "max-body-bytes": "largest OTLP request, after decompression (default 16MiB)",
    "memory-limit": "budget for queued and buffered spans (default 256MiB)",
    "max-buffered-spans": "most spans buffered at once (default 1000000)",
    "retention": "how long stored results are kept (default 7d)",
    "forward-queue-spans": "bound of each forward target's retry queue, in spans (default 100000)",
    "resolve-interval": "how often gateway DNS names are re-resolved (default 30s)",
    "drain-timeout": "on SIGTERM, how long queues may drain to forwards (default 10s)",
    "forward-retry-max": "longest backoff between forward retries (default 5s)",
    "max-new-revisions": "most workload-revisions first seen per minute; traces naming more"
    " are counted, not analysed (default 1000)",
    "log-level": "debug, info, warning or error (default info)",
}


def build_parser() -> argparse.ArgumentParser:
    """The ``podtrace collector`` argument parser (every default is None: see ``load_config``)."""
    parser = argparse.ArgumentParser(
        prog="podtrace collector",
        description="Receive OTLP traces (and metrics and logs, to forward); run as a pod sidecar"
        " or as a cluster gateway. "
        "Every flag also reads PODTRACE_<FLAG> from the environment.",
    )
    for flag in _FLAGS:
        action = "append" if _FLAGS[flag][1] == "list" else "store"
        metavar = flag.split("-")[-1].upper()
        parser.add_argument(f"--{flag}", action=action, metavar=metavar, help=_HELP[flag])
    return parser


def load_config(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> CollectorConfig:
    """Build a ``CollectorConfig`` from flags, then ``PODTRACE_*`` variables, then defaults.

    Raises:
        ConfigError: a value does not parse or is out of range.
        SystemExit: from argparse, for ``--help`` or an unknown flag.
    """
    env = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(list(argv)))
    values: dict[str, object] = {}
    from_env: dict[str, str] = {}  # flag -> variable, for flags the environment set
    try:
        for flag, (attr, kind) in _FLAGS.items():
            raw = args[flag.replace("-", "_")]
            if raw is None:
                raw = env.get(env_var(flag)) or None
                if raw is not None:
                    from_env[flag] = env_var(flag)
                    if kind == "list":
                        raw = [part for part in str(raw).split(",")]
            if raw is not None:
                values[attr] = _convert(flag, kind, raw)
        return CollectorConfig(**values)  # type: ignore[arg-type]
    except ConfigError as exc:
        if exc.flag not in from_env:
            raise
        # The flag was never typed: say where its value came from.
        raise ConfigError(f"{exc} (from ${from_env[exc.flag]})", flag=exc.flag) from None


def env_var(flag: str) -> str:
    """The environment variable a flag reads: ``api-port`` -> ``PODTRACE_API_PORT``."""
    return ENV_PREFIX + flag.replace("-", "_").upper()


def _convert(flag: str, kind: str, raw: object) -> object:
    if kind == "list":
        assert isinstance(raw, list)
        return tuple(part.strip() for item in raw for part in item.split(",") if part.strip())
    text = str(raw).strip()
    if kind == "int":
        return parse_int(text, flag=flag)
    if kind == "duration":
        return parse_duration(text, flag=flag)
    if kind == "size":
        return parse_size(text, flag=flag)
    return text.lower() if flag in ("mode", "log-level") else text
