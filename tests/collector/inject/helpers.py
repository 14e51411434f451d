"""Shared by the inject tests: the real ``podtrace`` command, and pod templates of manifests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from podtrace_collector.inject.manifests import TEMPLATE_PATHS

from tests import k8s_schema

GOLDEN = Path(__file__).resolve().parent / "golden"
PODTRACE = Path(sys.executable).with_name("podtrace")  # the installed console script


def podtrace(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``podtrace ARGS`` as a process, as a user would in a shell pipe."""
    return subprocess.run(
        [str(PODTRACE), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def load(text: str) -> list[dict[str, Any]]:
    """The objects of a YAML stream, read by PyYAML's own safe loader (not podtrace's)."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def objects_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Documents with ``kind: List`` opened up into their items."""
    return [item for doc in docs for item in (doc["items"] if doc["kind"] == "List" else [doc])]


def template_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod template of a workload object, or None."""
    node: Any = obj
    for key in TEMPLATE_PATHS.get(obj["kind"], ("-",)):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def validate_everything(docs: list[dict[str, Any]]) -> int:
    """Validate every object against the Kubernetes schemas; a custom resource's pod template
    as a PodTemplateSpec.  Returns how many checks ran."""
    checks = 0
    for obj in objects_of(docs):
        if k8s_schema.has_schema(obj):
            k8s_schema.validate(obj)
            checks += 1
        elif (template := template_of(obj)) is not None:
            k8s_schema.validate_pod_template(template)
            checks += 1
    return checks


def by_name(containers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in containers}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def self_signed(directory: Path, *, name: str = "localhost") -> tuple[Path, Path]:
    """Write a fresh self-signed certificate for ``name`` and 127.0.0.1; return (cert, key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    alt_names = x509.SubjectAlternativeName(
        [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(alt_names, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file
