"""Exit delay: how long a traced program takes to end after its last statement.

A child process configures ``podtrace.init()``, ends three spans, prints ``time.monotonic()``
(system-wide on Linux) as its last statement and exits; the parent notes when the process has
ended. Measured against a collector that answers (a minimal OTLP/HTTP endpoint), none listening
(connection refused) and a black hole (accepts connections, never answers), over HTTP and gRPC,
with the same interpreter ending without podtrace for reference. Medians of a few runs.

Run: ``.venv/bin/python -m bench bench_exit``.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RUNS = 5

CHILD = """
import sys, time
import podtrace
from opentelemetry import trace
podtrace.init("exit", endpoint=sys.argv[1], protocol=sys.argv[2], instrument=False)
for i in range(3):
    with trace.get_tracer("bench").start_as_current_span("span"):
        pass
print(time.monotonic(), flush=True)
"""

REFERENCE = """
import time
import opentelemetry.sdk.trace, requests
print(time.monotonic(), flush=True)
"""


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _refused() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _delay_s(code: str, *argv: str) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    )
    ended = time.monotonic()
    return ended - float(proc.stdout.split()[-1])


def _median(code: str, *argv: str) -> float:
    return statistics.median(_delay_s(code, *argv) for _ in range(RUNS))


def main() -> None:
    """Print the exit delay of each case."""
    print(f"exit delay, no podtrace (reference)        : {_median(REFERENCE) * 1e3:6.0f} ms")
    with _collector() as live:
        delay = _median(CHILD, live, "http/protobuf")
        print(f"exit delay, collector answers (http)       : {delay * 1e3:6.0f} ms")
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        black_hole = f"http://127.0.0.1:{hole.getsockname()[1]}"
        for protocol in ("http/protobuf", "grpc"):
            name = protocol.split("/")[0]
            refused = _median(CHILD, _refused(), protocol)
            print(f"exit delay, connection refused ({name:<4})      : {refused * 1e3:6.0f} ms")
            hanging = _median(CHILD, black_hole, protocol)
            print(f"exit delay, collector never answers ({name:<4}) : {hanging * 1e3:6.0f} ms")


if __name__ == "__main__":
    main()
