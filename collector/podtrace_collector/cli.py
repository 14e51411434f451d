"""``podtrace collector``: parse flags, start a ``Collector``, stop it cleanly on SIGTERM.

Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 2 for a bad flag or environment variable,
1 when the collector cannot start (a port in use, a store that cannot be opened).  Logs are one
JSON object per line on stderr (``ts``, ``level``, ``logger``, ``event`` and the event's fields),
one line per event and never one per span.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from podtrace_collector.config import CollectorConfig, load_config
from podtrace_collector.errors import CollectorError, ConfigError

logger = logging.getLogger("podtrace_collector")

# LogRecord attributes that are not an event's own fields.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``event``, then extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send every log record, as JSON lines, to stderr: the collector's from ``level`` up, its
    libraries' (uvicorn, grpc, asyncio) from warning up.  uvicorn is told to leave logging as it
    is (``log_config=None`` in ``collector.Collector``), so its lines are JSON too."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "podtrace_collector"):
        log = logging.getLogger(name)
        log.handlers.clear()
        log.propagate = True
    logging.getLogger("podtrace_collector").setLevel(level.upper())


def main(argv: Sequence[str]) -> int:
    """Run the collector until SIGTERM/SIGINT; return the process exit code."""
    try:
        config = load_config(argv)
    except SystemExit as exc:  # --help, or an unknown flag (argparse printed why)
        return int(exc.code) if isinstance(exc.code, int) else 2
    except ConfigError as exc:
        print(f"podtrace collector: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)
    return run(config)


def run(config: CollectorConfig) -> int:
    """Start a collector for ``config`` and serve until a stop signal."""
    import prometheus_client

    from podtrace_collector.collector import Collector, tune_gc  # heavy imports after flag checks
    from podtrace_collector.serving import raise_fd_limit

    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created
    stop = _install_signal_handlers()
    raise_fd_limit()  # every client connection holds a descriptor: take all we may
    try:
        collector = Collector(config)
        collector.start()
    except (CollectorError, OSError) as exc:
        logger.error("collector failed to start", extra={"error": str(exc)})
        return 1
    tune_gc()
    while not stop:
        time.sleep(0.2)
    logger.info("stop signal received; draining", extra={"timeout_s": config.drain_timeout_s})
    collector.stop(config.drain_timeout_s)
    return 0


def _install_signal_handlers() -> list[int]:
    """SIGTERM/SIGINT append to the returned list.

    The handler takes no lock: a handler that set a ``threading.Event`` could deadlock when the
    signal lands while the main thread holds that event's lock inside ``Event.wait``.
    """
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return received
