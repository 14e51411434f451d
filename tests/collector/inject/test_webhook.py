"""``podtrace webhook`` over real HTTPS on loopback, driven with recorded ``AdmissionReview``s.

The JSON Patch it answers, applied to the request's pod, must give exactly the pod that
``podtrace inject`` prints for the same pod.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
from podtrace_collector.inject.admission import Policy
from podtrace_collector.inject.mutate import inject_template
from podtrace_collector.inject.options import InjectOptions
from podtrace_collector.inject.server import (
    NAMESPACE_PATH,
    POD_PATH,
    ReloadingCertificate,
    create_app,
    listen,
    make_server,
)

from tests import k8s_schema
from tests.collector.inject.helpers import PODTRACE, load, podtrace, self_signed

RECORDED = Path(__file__).resolve().parent / "admission"


def _recorded(name: str) -> dict[str, Any]:
    review: dict[str, Any] = json.loads((RECORDED / name).read_text())
    return review


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@dataclass
class Webhook:
    url: str
    client: httpx.Client  # trusts only the test certificate


@contextmanager
def _serving(policy: Policy, cert: Path, key: Path) -> Iterator[Webhook]:
    certificate = ReloadingCertificate(str(cert), str(key))
    sock = listen("127.0.0.1", 0)
    server = make_server(create_app(policy), certificate, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "webhook did not start"
        time.sleep(0.01)
    verify = ssl.create_default_context(cafile=str(cert))
    try:
        with httpx.Client(verify=verify, timeout=10) as client:
            yield Webhook(f"https://localhost:{sock.getsockname()[1]}", client)
    finally:  # the client's connections are closed first: the server then stops at once
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def webhook(tls: tuple[Path, Path]) -> Iterator[Webhook]:
    policy = Policy(exclude_namespaces=frozenset({"podtrace"}))
    with _serving(policy, *tls) as running:
        yield running


def _admit(webhook: Webhook, path: str, review: dict[str, Any]) -> dict[str, Any]:
    answer = webhook.client.post(webhook.url + path, json=review)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    response: dict[str, Any] = body["response"]
    assert response["uid"] == review["request"]["uid"]
    assert response["allowed"] is True  # the webhook never blocks a pod
    return response


def _patched(review: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    pod: dict[str, Any] = jsonpatch.apply_patch(review["request"]["object"], patch)
    return pod


class TestMutation:
    """What the webhook answers for recorded pod creations."""

    @pytest.mark.parametrize(
        ("recording", "path"),
        [
            ("deployment-pod.json", NAMESPACE_PATH),
            ("job-pod.json", NAMESPACE_PATH),
            ("annotated-pod.json", POD_PATH),
        ],
    )
    def test_patched_pod_is_what_podtrace_inject_prints(
        self, webhook: Webhook, tmp_path: Path, recording: str, path: str
    ) -> None:
        """The JSON Patch applied to the pod equals `podtrace inject -f pod.json` on that pod."""
        review = _recorded(recording)
        pod = _patched(review, _admit(webhook, path, review))
        source = tmp_path / "pod.json"
        source.write_text(json.dumps(review["request"]["object"]))
        printed = podtrace("inject", "-f", str(source))
        assert printed.returncode == 0, printed.stderr
        assert load(printed.stdout) == [pod]
        assert pod["spec"]["initContainers"][0]["name"] == "podtrace"
        k8s_schema.validate(pod)

    def test_patch_is_a_list_of_additions(self, webhook: Webhook) -> None:
        """The patch adds podtrace's parts and replaces nothing the pod had."""
        review = _recorded("deployment-pod.json")
        response = _admit(webhook, NAMESPACE_PATH, review)
        operations = json.loads(base64.b64decode(response["patch"]))
        assert {op["op"] for op in operations} == {"add"}
        paths = [op["path"] for op in operations]
        assert "/spec/initContainers" in paths and "/metadata/annotations" in paths
        assert "/spec/containers/0/env/1" in paths  # after the app's own OTEL_SERVICE_NAME

    def test_in_process_and_over_https_agree(self, webhook: Webhook) -> None:
        """The patched pod is inject_template's output for every recorded injectable pod."""
        for recording in ("deployment-pod.json", "job-pod.json", "annotated-pod.json"):
            review = _recorded(recording)
            path = POD_PATH if recording == "annotated-pod.json" else NAMESPACE_PATH
            pod = _patched(review, _admit(webhook, path, review))
            expected, _ = inject_template(review["request"]["object"], InjectOptions())
            assert json.dumps(pod) == json.dumps(expected)  # key order too

    def test_python_annotation_wraps_the_command(self, webhook: Webhook) -> None:
        """podtrace.io/python: "true" runs the pod's command under `podtrace run`."""
        review = _recorded("annotated-pod.json")
        pod = _patched(review, _admit(webhook, POD_PATH, review))
        assert pod["spec"]["containers"][0]["command"][:4] == ["podtrace", "run", "--", "python"]

    def test_kube_system_is_never_touched(self, webhook: Webhook) -> None:
        """A kube-system pod gets no patch even on the namespace-wide path."""
        response = _admit(webhook, NAMESPACE_PATH, _recorded("kube-system-pod.json"))
        assert "patch" not in response and "warnings" not in response

    def test_own_namespace_and_own_pods_are_never_touched(self, webhook: str) -> None:
        """Pods of an excluded namespace, or labelled part-of: podtrace, get no patch."""
        review = _recorded("deployment-pod.json")
        review["request"]["namespace"] = "podtrace"
        assert "patch" not in _admit(webhook, NAMESPACE_PATH, review)
        review = _recorded("deployment-pod.json")
        review["request"]["object"]["metadata"]["labels"]["app.kubernetes.io/part-of"] = "podtrace"
        assert "patch" not in _admit(webhook, NAMESPACE_PATH, review)

    def test_pod_path_needs_the_annotation(self, webhook: Webhook) -> None:
        """On /mutate/pod only pods annotated podtrace.io/inject: "true" are injected."""
        assert "patch" not in _admit(webhook, POD_PATH, _recorded("deployment-pod.json"))
        review = _recorded("deployment-pod.json")
        review["request"]["object"]["metadata"]["annotations"] = {"podtrace.io/inject": "true"}
        assert "patch" in _admit(webhook, POD_PATH, review)

    def test_opted_out_pod_in_an_opted_in_namespace(self, webhook: str) -> None:
        """podtrace.io/inject: "false" wins over the namespace label."""
        review = _recorded("deployment-pod.json")
        review["request"]["object"]["metadata"]["annotations"] = {"podtrace.io/inject": "false"}
        assert "patch" not in _admit(webhook, NAMESPACE_PATH, review)

    def test_already_injected_pod_is_left_alone(self, webhook: Webhook) -> None:
        """A pod whose template `podtrace inject` already changed gets no second patch."""
        review = _recorded("deployment-pod.json")
        injected, _ = inject_template(review["request"]["object"], InjectOptions())
        review["request"]["object"] = injected
        assert "patch" not in _admit(webhook, NAMESPACE_PATH, review)

    def test_conflicting_otlp_sidecar_is_admitted_with_a_warning(self, webhook: str) -> None:
        """A pod that runs its own collector on 4317/4318 starts as it is, and kubectl says why."""
        response = _admit(webhook, NAMESPACE_PATH, _recorded("otel-agent-pod.json"))
        assert "patch" not in response
        (warning,) = response["warnings"]
        assert warning.startswith("podtrace: not injected: container 'otel-agent' runs an ")
        assert "4317/4318" in warning

    @pytest.mark.parametrize("operation", ["UPDATE", "DELETE", "CONNECT"])
    def test_only_creations_are_mutated(self, webhook: Webhook, operation: str) -> None:
        """An update (or anything but CREATE) is allowed untouched."""
        review = _recorded("deployment-pod.json")
        review["request"]["operation"] = operation
        assert "patch" not in _admit(webhook, NAMESPACE_PATH, review)

    def test_container_mode_job_is_admitted_with_a_warning(self, tls: tuple[Path, Path]) -> None:
        """With --sidecar=container a Job's pod would never complete: it is left as it is."""
        policy = Policy(options=InjectOptions(sidecar="container"))
        with _serving(policy, *tls) as running:
            response = _admit(running, NAMESPACE_PATH, _recorded("job-pod.json"))
            assert "patch" not in response
            assert "needs the native sidecar" in response["warnings"][0]
            response = _admit(running, NAMESPACE_PATH, _recorded("deployment-pod.json"))
            pod = _patched(_recorded("deployment-pod.json"), response)
            assert [c["name"] for c in pod["spec"]["containers"]] == ["cart", "podtrace"]


class TestBadRequests:
    """Bad input gets a 4xx JSON error, never a 500 or a dropped connection."""

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"{not json", "the body is not JSON"),
            (b"\xff\xfe", "the body is not JSON"),
            (b"[]", "the body is not an AdmissionReview"),
            (json.dumps({"kind": "Pod", "apiVersion": "v1"}).encode(), "not an AdmissionReview"),
            (
                json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1"}),
                "only admission.k8s.io/v1 AdmissionReviews are served",
            ),
            (
                json.dumps({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}),
                "no request with a uid",
            ),
        ],
    )
    def test_not_an_admission_review(
        self, webhook: Webhook, body: bytes | str, message: str
    ) -> None:
        """400 with the error envelope naming what is wrong."""
        answer = webhook.client.post(webhook.url + NAMESPACE_PATH, content=body)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "bad_request"
        assert message in answer.json()["error"]["message"]

    def test_odd_pod_shapes_are_admitted_untouched(self, webhook: str) -> None:
        """A pod the mutation cannot read is allowed as it is, with a warning."""
        review = _recorded("deployment-pod.json")
        review["request"]["object"]["spec"]["containers"] = "not a list"
        response = _admit(webhook, NAMESPACE_PATH, review)
        assert "patch" not in response and "spec.containers" in response["warnings"][0]

    def test_too_large(self, webhook: Webhook) -> None:
        """A body over 8 MiB is refused with 413."""
        answer = webhook.client.post(
            webhook.url + NAMESPACE_PATH, content=b" " * (8 * 1024 * 1024 + 1)
        )
        assert answer.status_code == 413

    def test_health_and_methods(self, webhook: Webhook) -> None:
        """GET /healthz answers ok; GET on a mutate path is 405; other paths 404."""
        assert webhook.client.get(webhook.url + "/healthz").text == "ok\n"
        assert webhook.client.get(webhook.url + POD_PATH).status_code == 405
        assert webhook.client.post(webhook.url + "/mutate").status_code == 404


def _peer_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we compare the certificate served, whichever it is
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as tls_sock:
        der = tls_sock.getpeercert(binary_form=True)
    assert der is not None
    return der


class TestCertificateReload:
    """cert-manager renews the Secret, the kubelet rewrites the files: no restart needed."""

    def test_new_files_are_served_to_new_connections(self, tmp_path: Path) -> None:
        """After the files change, the next handshake presents the new certificate."""
        cert, key = self_signed(tmp_path / "live")
        with _serving(Policy(), cert, key) as running:
            port = int(running.url.rsplit(":", 1)[1])
            first = _peer_certificate(port)
            assert first == ssl.PEM_cert_to_DER_cert(cert.read_text())
            new_cert, new_key = self_signed(tmp_path / "renewed")
            time.sleep(0.01)  # a distinct modification time even on coarse clocks
            os.replace(new_key, key)
            os.replace(new_cert, cert)
            second = _peer_certificate(port)
            assert second != first
            assert second == ssl.PEM_cert_to_DER_cert(cert.read_text())

    def test_half_written_files_keep_the_old_certificate(self, tmp_path: Path) -> None:
        """A certificate not matching the key (mid-renewal) is not loaded; the old one stays."""
        cert, key = self_signed(tmp_path / "live")
        with _serving(Policy(), cert, key) as running:
            port = int(running.url.rsplit(":", 1)[1])
            first = _peer_certificate(port)
            other_cert, _ = self_signed(tmp_path / "other")
            os.replace(other_cert, cert)  # the key has not been replaced yet
            assert _peer_certificate(port) == first


@contextmanager
def _webhook_process(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    process = subprocess.Popen(
        [str(PODTRACE), "webhook", "--bind", "127.0.0.1", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "POD_NAMESPACE": "podtrace"},
    )
    try:
        assert process.stderr is not None
        for raw in process.stderr:
            entry = json.loads(raw)
            if entry.get("event") == "webhook started":
                yield process, entry
                return
        raise AssertionError("podtrace webhook exited before starting")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.slow
def test_podtrace_webhook_command(tls: tuple[Path, Path]) -> None:
    """`podtrace webhook` serves HTTPS from the files, logs JSON, and exits 0 on SIGTERM."""
    cert, key = tls
    with _webhook_process("--tls-cert", str(cert), "--tls-key", str(key)) as (process, started):
        assert started["excluded"] == ["kube-system", "podtrace"]  # its own namespace, always
        url = f"https://localhost:{started['port']}"
        review = _recorded("deployment-pod.json")
        verify = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=verify, timeout=10) as client:
            response = _admit(Webhook(url, client), NAMESPACE_PATH, review)
        assert _patched(review, response)["spec"]["initContainers"][0]["name"] == "podtrace"
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--tls-cert", "/nonexistent/tls.crt", "--tls-key", "/nonexistent/tls.key"], 1, "No such"),
        (["--sidecar", "sideways"], 2, "invalid choice"),
        (["--image", "has space"], 2, "invalid sidecar image"),
    ],
)
def test_podtrace_webhook_refuses_to_start(args: list[str], code: int, message: str) -> None:
    """Unreadable TLS files or bad flags: one line on stderr, no traceback, a non-zero exit."""
    result = podtrace("webhook", "--port", "0", *args)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_recordings_are_valid_pods() -> None:
    """The recorded requests hold pods the Kubernetes schema accepts (a sanity check)."""
    for path in RECORDED.glob("*.json"):
        k8s_schema.validate(copy.deepcopy(json.loads(path.read_text())["request"]["object"]))
