"""The collector process: receivers, pipeline and API wired together from a ``CollectorConfig``.

``Collector(config, sink=...)`` is the seam between this receiving half and the analysis half:

* **gateway** — spans go to ``sink`` (a ``SpanSink``, with optional ``start()`` and
  ``close(timeout_s)``).  When no sink is given, ``stage.build_analysis_stage`` builds the
  analysis stage (assemble → analyse → store); benchmarks and tests pass their own.
  ``--forward`` URLs also get every span (Jaeger, Tempo, a vendor).
* **sidecar** — the pod's Kubernetes attributes are stamped on every resource and spans go to the
  ``Forwarder`` (one gateway per trace id).

In both modes OTLP metrics and logs are taken on the same ports, stamped like spans in a sidecar,
and forwarded as they are to ``--forward-metrics`` / ``--forward-logs`` (``ingest/signals.py``,
``forward/signals.py``); without those flags they are answered with a partial success that
rejects them.

Everything runs in the calling process: the gRPC server on its own thread pool, the OTLP/HTTP and
API servers each on a uvicorn loop in a thread.  Sockets are bound in ``start()`` (port 0 picks a
free port; the bound ports are ``grpc_port``, ``http_port``, ``api_port``), so a ``Collector`` can
start and stop many times inside a test process.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn

from podtrace_collector.api.app import create_app
from podtrace_collector.budget import MemoryBudget
from podtrace_collector.config import CollectorConfig
from podtrace_collector.errors import CollectorError
from podtrace_collector.forward.forwarder import Forwarder, Resolve, resolve_ipv4_first
from podtrace_collector.forward.signals import signal_forwarders
from podtrace_collector.ingest.dedupe import Deduplicator
from podtrace_collector.ingest.enrich import DetectedValue, Enricher, detect_pod_attributes
from podtrace_collector.ingest.pipeline import Ingest
from podtrace_collector.ingest.signals import SignalIngest
from podtrace_collector.metrics import CollectorMetrics
from podtrace_collector.model import SpanSink
from podtrace_collector.receive.admission import Admission, export_limit
from podtrace_collector.receive.grpc import GrpcReceiver
from podtrace_collector.receive.http import OtlpHttpApp, create_otlp_app
from podtrace_collector.serving import connection_cap, fd_limit, guarded_protocol
from podtrace_collector.signals import FORWARDED
from podtrace_collector.stage import build_analysis_stage
from podtrace_collector.store import open_store

logger = logging.getLogger(__name__)


class Collector:
    """One collector process.

    Args:
        config: the configuration.
        sink: the gateway's analysis stage (default: ``build_analysis_stage``).
        store: the store the API reads (default: opened from ``config.store`` in a gateway).
            The collector closes it on ``stop``.
        pod_attributes: the sidecar's attributes to stamp (default: the library's detector).
        resolve: DNS lookup for forward targets (tests inject one).
    """

    def __init__(
        self,
        config: CollectorConfig,
        *,
        sink: SpanSink | None = None,
        store: Any = None,
        pod_attributes: Mapping[str, DetectedValue] | None = None,
        resolve: Resolve = resolve_ipv4_first,
    ) -> None:
        self.config = config
        self.metrics = CollectorMetrics()
        self.budget = MemoryBudget(config.memory_limit_bytes, config.max_buffered_spans)
        self.metrics.memory_limit.set(config.memory_limit_bytes)
        self.metrics.buffered_spans_limit.set(config.max_buffered_spans)
        self.metrics.watch_budget(lambda: self.budget.used_bytes, lambda: self.budget.used_spans)
        self.admission = Admission(
            max_exports=export_limit(config.memory_limit_bytes, config.max_body_bytes),
            max_body_bytes=config.memory_limit_bytes,
        )
        self.metrics.exports_limit.set(self.admission.max_exports)
        self.metrics.exports_in_progress.set_function(lambda: self.admission.exports)
        self.grpc_port: int | None = None
        self.http_port: int | None = None
        self.api_port: int | None = None
        self._sidecar = config.mode == "sidecar"
        self.store = (
            store
            if store is not None or self._sidecar
            else open_store(config.store, retention_s=config.retention_s)
        )
        self.sink: SpanSink | None = None if self._sidecar else (sink or self._default_sink())
        self.forwarder = self._make_forwarder(resolve)
        enricher = None
        if self._sidecar:
            attrs = detect_pod_attributes() if pod_attributes is None else pod_attributes
            enricher = Enricher(attrs)
        self.ingest = Ingest(
            metrics=self.metrics,
            dedupe=Deduplicator(),
            sink=self.sink,
            forwarder=self.forwarder,
            enricher=enricher,
        )
        self.signal_forwarders = signal_forwarders(config, self.metrics, self.budget)
        self.signals = [
            SignalIngest(
                signal,
                metrics=self.metrics,
                forwarder=self.signal_forwarders.get(signal.name),
                enricher=enricher,
            )
            for signal in FORWARDED
        ]
        self._grpc: GrpcReceiver | None = None
        self._otlp: OtlpHttpApp | None = None
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []
        self._ready = False

    # -- construction helpers --------------------------------------------------------------

    def _default_sink(self) -> SpanSink:
        return build_analysis_stage(
            self.config, store=self.store, metrics=self.metrics, budget=self.budget
        )

    def _make_forwarder(self, resolve: Resolve) -> Forwarder | None:
        if not self.config.forward:
            return None
        return Forwarder(
            self.config.forward,
            hashed=self._sidecar,
            metrics=self.metrics,
            budget=self.budget,
            queue_spans=self.config.forward_queue_spans,
            token=self.config.forward_token,
            max_message_bytes=self.config.max_body_bytes,
            resolve_interval_s=self.config.resolve_interval_s,
            resolve=resolve,
            retry_initial_s=min(0.1, self.config.forward_retry_max_s),
            retry_max_s=self.config.forward_retry_max_s,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Receivers bound and serving, store open and writes succeeding."""
        return self._ready and bool(getattr(self.sink, "healthy", True))

    def start(self) -> None:
        """Bind every port and start serving; returns once all servers accept connections.

        Raises:
            CollectorError: a port cannot be bound or a server does not come up; what had
                started is stopped first.
        """
        try:
            self._start()
        except BaseException:
            # Stop what did start, the gRPC receiver's event loop thread above all: a process
            # exiting with it running can crash in the interpreter's teardown (a SIGSEGV was
            # seen when the API port was taken), and an embedding process keeps its ports.
            self.stop(0.0)
            raise

    def _start(self) -> None:
        cfg = self.config
        _call_optional(self.sink, "start")
        if self.forwarder is not None:
            self.forwarder.start()
        for forwarder in self.signal_forwarders.values():
            forwarder.start()
        self._grpc = GrpcReceiver(
            self.ingest,
            self.metrics,
            self.admission,
            bind=cfg.bind,
            port=cfg.grpc_port,
            max_body_bytes=cfg.max_body_bytes,
            max_connections=connection_cap(fd_limit()),
            token=cfg.otlp_token,
            signals=self.signals,
        )
        self.grpc_port = self._grpc.port
        self._grpc.start()
        self._otlp = create_otlp_app(
            self.ingest,
            self.metrics,
            self.admission,
            max_body_bytes=cfg.max_body_bytes,
            token=cfg.otlp_token,
            signals=self.signals,
        )
        self.http_port = self._serve(self._otlp, cfg.http_port, "otlp-http")
        api = create_app(
            metrics=self.metrics,
            store=self.store,
            api_token=cfg.api_token,
            allowed_hosts=cfg.api_allowed_hosts,
            is_ready=lambda: self.ready,
        )
        self.api_port = self._serve(api, cfg.api_port, "api")
        self._ready = True
        logger.info(
            "collector started",
            extra={
                "mode": cfg.mode,
                "bind": cfg.bind,
                "grpc_port": self.grpc_port,
                "http_port": self.http_port,
                "api_port": self.api_port,
                "forward": list(cfg.forward),
                "forward_metrics": list(cfg.forward_metrics),
                "forward_logs": list(cfg.forward_logs),
                "open_files_limit": fd_limit(),
                "connections_per_port": connection_cap(fd_limit()),
                "exports_admitted": self.admission.max_exports,
            },
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop accepting, drain forward queues and the sink within ``timeout_s``, close all."""
        deadline = time.monotonic() + timeout_s
        self._ready = False
        self.ingest.stopping = True
        for signal in self.signals:
            signal.stopping = True
        if self._grpc is not None:
            self._grpc.stop(min(1.0, timeout_s))
        for server, _ in self._servers[:1]:  # OTLP/HTTP first: no new spans
            server.should_exit = True
        if self.forwarder is not None:
            self.forwarder.close(max(0.0, deadline - time.monotonic()))
        for forwarder in self.signal_forwarders.values():
            forwarder.close(max(0.0, deadline - time.monotonic()))
        _call_optional(self.sink, "close", max(0.0, deadline - time.monotonic()))
        for server, thread in self._servers:
            server.should_exit = True
            thread.join(max(0.5, deadline - time.monotonic()))
        self._servers.clear()
        if self._otlp is not None:
            self._otlp.close()
        _call_optional(self.store, "close")
        logger.info("collector stopped", extra={"mode": self.config.mode})

    def _serve(self, app: Any, port: int, name: str) -> int:
        sock = _bind(self.config.bind, port)
        config = uvicorn.Config(
            app,
            http=guarded_protocol(
                max_connections=connection_cap(fd_limit()),
                on_close=lambda reason: self.metrics.connections_closed.labels(name, reason).inc(),
            ),
            log_config=None,  # the process's logging stays as configured (JSON lines)
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=_run_server, args=(server, sock), name=f"podtrace-{name}", daemon=True
        )
        thread.start()
        self._servers.append((server, thread))
        end = time.monotonic() + 10.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > end:
                raise CollectorError(f"the {name} server did not start on port {port}")
            time.sleep(0.005)
        return int(sock.getsockname()[1])


def tune_gc() -> None:
    """Tune the cyclic garbage collector for a dedicated collector process (``podtrace collector``).

    Ingest allocates a few objects per span (``Span``, its attribute dict, ids) that form no
    reference cycles and die young; with the default thresholds the collector runs a generation-0
    pass every 700 allocations and a full pass over the whole heap (FastAPI, grpcio, protobuf
    descriptors...) far too often, which cost about 30 % of ingest throughput in
    ``bench/bench_ingest.py``.  Everything alive after start-up is moved out of the collector's
    sight (``gc.freeze``) and generation 0 is collected every 50 000 net allocations.  Not done
    by ``Collector`` itself, which may be embedded in another process (tests).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _run_server(server: uvicorn.Server, sock: socket.socket) -> None:
    # ``run`` (not ``asyncio.run(serve())``) so that uvicorn's loop factory picks uvloop, and its
    # HTTP protocol httptools, when installed: together about a third less CPU per OTLP export.
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CollectorError(f"cannot bind {host}:{port}: {exc}") from exc
    sock.listen(1024)
    return sock


def _call_optional(obj: Any, method: str, *args: Any) -> None:
    func = getattr(obj, method, None)
    if callable(func):
        func(*args)
