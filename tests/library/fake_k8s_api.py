"""A fake Kubernetes API server: recorded JSON served by http.server on 127.0.0.1.

Routes map a path to (status, JSON body, delay in seconds); requests are recorded so tests can
check the bearer token and which objects were fetched.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

NS = "shop"
POD = "cart-7d9f8c6b5-x2k4p"
UID = "5f8a1c2e-7d3b-4e9f-a1b2-c3d4e5f6a7b8"
CTR = "3f2a9c1d4b5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"

# Trimmed from `kubectl get pod -o json` of a Deployment's pod with an app and a sidecar.
POD_JSON: dict[str, Any] = {
    "kind": "Pod",
    "apiVersion": "v1",
    "metadata": {
        "name": POD,
        "namespace": NS,
        "uid": UID,
        "labels": {"app.kubernetes.io/name": "cart", "pod-template-hash": "7d9f8c6b5", "team": "a"},
        "annotations": {"resource.opentelemetry.io/deployment.environment.name": "prod"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "cart-7d9f8c6b5",
                "uid": "0d3f1c2e-7d3b-4e9f-a1b2-c3d4e5f6a7b8",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "nodeName": "node-1",
        "containers": [
            {"name": "app", "image": "ghcr.io/shop/cart:1.4.0"},
            {"name": "podtrace", "image": "ghcr.io/podtrace/collector:0.1.0"},
        ],
    },
    "status": {
        "containerStatuses": [
            {"name": "app", "containerID": f"containerd://{CTR}", "ready": True},
            {"name": "podtrace", "containerID": "containerd://" + "e" * 64, "ready": True},
        ]
    },
}
REPLICASET_JSON: dict[str, Any] = {
    "kind": "ReplicaSet",
    "metadata": {
        "name": "cart-7d9f8c6b5",
        "namespace": NS,
        "ownerReferences": [{"kind": "Deployment", "name": "cart", "controller": True}],
    },
}
POD_PATH = f"/api/v1/namespaces/{NS}/pods/{POD}"
RS_PATH = f"/apis/apps/v1/namespaces/{NS}/replicasets/cart-7d9f8c6b5"

Route = tuple[int, Any, float]


def default_routes() -> dict[str, Route]:
    """A healthy API: the pod and its ReplicaSet."""
    return {POD_PATH: (200, POD_JSON, 0.0), RS_PATH: (200, REPLICASET_JSON, 0.0)}


class FakeKubernetesApi:
    """Serve ``routes``; unknown paths answer 404 like the real API."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes = default_routes() if routes is None else routes
        self.requests: list[tuple[str, str | None]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeKubernetesApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(api: FakeKubernetesApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests.append((self.path, self.headers.get("Authorization")))
            status, body, delay = api.routes.get(self.path, (404, {"kind": "Status"}, 0.0))
            if delay:
                time.sleep(delay)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (deadline): expected in the slow cases

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
