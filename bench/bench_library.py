"""Library overhead, measured side by side in one run.

1. Per-span cost on the request path: a provider configured by ``podtrace.init()`` against a
   plain OpenTelemetry SDK setup with the same processor (BatchSpanProcessor) and the same
   exporter (a no-op one, so the network is not measured). Rounds alternate between the two and
   the medians are compared; target ratio <= 1.02.
2. Start-up: ``podtrace run -- python -c pass`` against ``opentelemetry-instrument python -c pass``
   (alternating runs, medians), with bare ``python -c pass`` for reference.

Run: ``.venv/bin/python -m bench bench_library``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import podtrace

SPANS_PER_ROUND = 1500  # below the default queue size: no round measures the drop path
ROUNDS = 30
STARTUP_RUNS = 5


class NullExporter(SpanExporter):
    """Accepts every batch instantly."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _round(tracer: Tracer, provider: TracerProvider) -> float:
    start = time.perf_counter()
    for _ in range(SPANS_PER_ROUND):
        with tracer.start_as_current_span("GET /items/{id}") as span:
            span.set_attribute("http.route", "/items/{id}")
    elapsed = time.perf_counter() - start
    provider.force_flush()  # drain outside the timed part, so both sides start empty
    return elapsed / SPANS_PER_ROUND


def per_span() -> tuple[float, float]:
    """Median seconds per span: (podtrace, plain SDK)."""
    os.environ.setdefault("POD_NAME", "bench-7d9f8c6b5-x2k4p")
    os.environ.setdefault("POD_NAMESPACE", "bench")
    ours = podtrace.init(instrument=False, exporter=NullExporter(), handle_sigterm=False)
    plain = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    plain.add_span_processor(BatchSpanProcessor(NullExporter()))
    sides = [(ours.get_tracer("bench"), ours), (plain.get_tracer("bench"), plain)]
    times: list[list[float]] = [[], []]
    for tracer, provider in sides:  # warm-up
        _round(tracer, provider)
    for i in range(ROUNDS):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for side in order:
            times[side].append(_round(*sides[side]))
    plain.shutdown()
    return statistics.median(times[0]), statistics.median(times[1])


def _start_time(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def startup() -> dict[str, float]:
    """Median wall time of each start-up command."""
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POD_", "OTEL_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "podtrace run": [str(bin_dir / "podtrace"), "run", "--", sys.executable, "-c", "pass"],
        "opentelemetry-instrument": [
            str(bin_dir / "opentelemetry-instrument"),
            sys.executable,
            "-c",
            "pass",
        ],
    }
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(STARTUP_RUNS):
        for name, command in commands.items():
            samples[name].append(_start_time(command, env))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    """Print the figures and ratios."""
    ours, plain = per_span()
    print(f"per span, podtrace.init()     : {ours * 1e6:8.2f} us")
    print(f"per span, plain SDK           : {plain * 1e6:8.2f} us")
    print(f"per-span ratio podtrace/plain : {ours / plain:8.3f}  (target <= 1.02)")
    times = startup()
    for name, value in times.items():
        print(f"start-up, {name:<24}: {value * 1e3:8.0f} ms")
    ratio = times["podtrace run"] / times["opentelemetry-instrument"]
    print(f"start-up ratio podtrace run / opentelemetry-instrument: {ratio:.3f}  (target <= 1.0)")


if __name__ == "__main__":
    main()
