"""Reading podtrace's environment variables."""

from __future__ import annotations

import pytest

from podtrace import _env


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("", False),
        ("no", False),
    ],
)
def test_flag(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    """Boolean switches accept the usual spellings."""
    monkeypatch.setenv("PODTRACE_K8S_API", raw)
    assert _env.flag(_env.PODTRACE_K8S_API) is expected


@pytest.mark.parametrize(("raw", "expected"), [("0.5", 0.5), ("abc", 3.0), ("-1", 3.0), ("", 3.0)])
def test_seconds(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    """Malformed or non-positive durations fall back to the default."""
    monkeypatch.setenv("PODTRACE_SHUTDOWN_TIMEOUT_S", raw)
    assert _env.seconds(_env.PODTRACE_SHUTDOWN_TIMEOUT_S, 3.0) == expected


def test_first_skips_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable set to blanks counts as unset."""
    monkeypatch.setenv("POD_NAME", "  ")
    monkeypatch.setenv("K8S_POD_NAME", "web-0")
    assert _env.first(_env.POD_NAME_VARS) == "web-0"


def test_example_manifest_uses_spellings_the_detector_reads() -> None:
    """examples/k8s/downward-api.yaml feeds variables and paths that _env names."""
    import re
    from pathlib import Path

    manifest = Path(__file__).parents[2] / "examples" / "k8s" / "downward-api.yaml"
    text = manifest.read_text()
    downward = set(re.findall(r"- name: (\w+)\n\s+valueFrom: \{fieldRef", text))
    known = {
        *_env.POD_NAME_VARS,
        *_env.POD_UID_VARS,
        *_env.NODE_NAME_VARS,
        *_env.NAMESPACE_VARS,
        *_env.CONTAINER_NAME_VARS,
    }
    assert downward == {"POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"}
    assert downward <= known
    assert f"mountPath: {_env.DEFAULT_PODINFO_DIR}" in text
    for item in ("labels", "annotations", "name", "namespace", "uid"):
        assert f"- path: {item}\n" in text
