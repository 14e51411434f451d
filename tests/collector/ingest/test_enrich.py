"""Sidecar enrichment: pod attributes on every resource that lacks them, in what is forwarded."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from podtrace_collector.ingest.enrich import Enricher, detect_pod_attributes
from podtrace_collector.receive.decode import extract, parse_protobuf

from tests.collector.otlp_helpers import make_request

POD = {
    "k8s.pod.name": "cart-7d9f8c6b5-x2k4q",
    "k8s.namespace.name": "shop",
    "service.name": "cart",
    "container.image.tags": ["1.4.0", "latest"],
}


def _resource(lean: object) -> dict[str, object]:
    full = ExportTraceServiceRequest.FromString(lean.SerializeToString())  # type: ignore[attr-defined]
    out: dict[str, object] = {}
    for kv in full.resource_spans[0].resource.attributes:
        value = kv.value
        out[kv.key] = (
            [v.string_value for v in value.array_value.values]
            if value.HasField("array_value")
            else value.string_value
        )
    return out


def test_adds_missing_attributes_to_the_forwarded_bytes() -> None:
    """Missing keys are added to the protobuf itself, so forwarding and decoding agree."""
    lean = parse_protobuf(
        make_request(2, resource={"telemetry.sdk.language": "go"}).SerializeToString()
    )
    assert Enricher(POD).apply(lean) == 4
    resource = _resource(lean)
    assert resource["k8s.pod.name"] == POD["k8s.pod.name"]
    assert resource["container.image.tags"] == ["1.4.0", "latest"]
    decoded = extract(lean).spans[0].resource.attributes
    assert (
        decoded["k8s.namespace.name"] == "shop"
        and decoded["container.image.tags"] == "1.4.0,latest"
    )


def test_app_attributes_win() -> None:
    """Attributes the app set are kept; only the missing ones are added."""
    lean = parse_protobuf(
        make_request(
            1, resource={"service.name": "basket", "k8s.pod.name": "mine"}
        ).SerializeToString()
    )
    Enricher(POD).apply(lean)
    resource = _resource(lean)
    assert resource["service.name"] == "basket" and resource["k8s.pod.name"] == "mine"
    assert resource["k8s.namespace.name"] == "shop"


def test_sdk_default_service_name_is_replaced() -> None:
    """``unknown_service:…`` counts as missing, and is replaced rather than duplicated."""
    lean = parse_protobuf(
        make_request(1, resource={"service.name": "unknown_service:java"}).SerializeToString()
    )
    Enricher(POD).apply(lean)
    full = ExportTraceServiceRequest.FromString(lean.SerializeToString())
    names = [
        kv.value.string_value
        for kv in full.resource_spans[0].resource.attributes
        if kv.key == "service.name"
    ]
    assert names == ["cart"]


def test_every_resource_is_stamped() -> None:
    """Each ResourceSpans of a request is enriched."""
    request = make_request(1, resource={})
    request.resource_spans.append(make_request(1, resource={"a": "b"}).resource_spans[0])
    lean = parse_protobuf(request.SerializeToString())
    Enricher({"k8s.pod.name": "p"}).apply(lean)
    assert {s.resource.attributes["k8s.pod.name"] for s in extract(lean).spans} == {"p"}


def test_empty_enricher_changes_nothing() -> None:
    """Without detected attributes the request is untouched."""
    request = make_request(1)
    lean = parse_protobuf(request.SerializeToString())
    enricher = Enricher({})
    assert not enricher and enricher.apply(lean) == 0
    assert ExportTraceServiceRequest.FromString(lean.SerializeToString()) == request


def test_detector_is_used_and_failures_are_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The library's detector supplies the attributes; if it fails, a warning and no attributes."""
    import podtrace as k8s

    monkeypatch.setattr(
        k8s, "detect_kubernetes_attributes", lambda: {"k8s.pod.name": "p", "bad": 3}
    )
    assert detect_pod_attributes() == {"k8s.pod.name": "p"}

    def broken() -> dict[str, str]:
        raise RuntimeError("no pod here")

    monkeypatch.setattr(k8s, "detect_kubernetes_attributes", broken)
    with caplog.at_level(logging.WARNING, logger="podtrace_collector.ingest.enrich"):
        assert detect_pod_attributes() == {}
    assert "detection failed" in caplog.text


def test_container_level_attributes_are_not_stamped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidecar's own container id, name, image and instance id never land on the app's spans."""
    import podtrace as k8s

    found = {
        "k8s.pod.name": "cart-7d9f8c6b5-x7k2p",
        "container.id": "a" * 64,
        "k8s.container.name": "podtrace-sidecar",
        "container.image.name": "ghcr.io/podtrace/podtrace",
        "container.image.tags": ["0.1.0"],
        "service.instance.id": "uid/podtrace-sidecar/1",
    }
    monkeypatch.setattr(k8s, "detect_kubernetes_attributes", lambda: found)
    assert detect_pod_attributes() == {"k8s.pod.name": "cart-7d9f8c6b5-x7k2p"}
