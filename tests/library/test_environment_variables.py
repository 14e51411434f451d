"""Reading podtrace's environment variables."""

from __future__ import annotations

import pytest

from podtrace import environment_variables as envvars


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
    assert envvars.flag(envvars.PODTRACE_K8S_API) is expected


@pytest.mark.parametrize(("raw", "expected"), [("0.5", 0.5), ("abc", 3.0), ("-1", 3.0), ("", 3.0)])
def test_seconds(monkeypatch: pytest.MonkeyPatch, raw: str, expected: float) -> None:
    """Malformed or non-positive durations fall back to the default."""
    monkeypatch.setenv("PODTRACE_SHUTDOWN_TIMEOUT_S", raw)
    assert envvars.seconds(envvars.PODTRACE_SHUTDOWN_TIMEOUT_S, 3.0) == expected


def test_first_skips_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable set to blanks counts as unset."""
    monkeypatch.setenv("POD_NAME", "  ")
    monkeypatch.setenv("K8S_POD_NAME", "web-0")
    assert envvars.first(envvars.POD_NAME_VARS) == "web-0"


def test_example_manifest_uses_spellings_the_detector_reads() -> None:
    """examples/k8s/downward-api.yaml feeds variables and paths that _env names."""
    import re
    from pathlib import Path

    manifest = Path(__file__).parents[2] / "examples" / "k8s" / "downward-api.yaml"
    text = manifest.read_text()
    downward = set(re.findall(r"- name: (\w+)\n\s+valueFrom: \{fieldRef", text))
    known = {
        *envvars.POD_NAME_VARS,
        *envvars.POD_UID_VARS,
        *envvars.NODE_NAME_VARS,
        *envvars.NAMESPACE_VARS,
        *envvars.CONTAINER_NAME_VARS,
    }
    assert downward == {"POD_NAME", "POD_NAMESPACE", "POD_UID", "NODE_NAME"}
    assert downward <= known
    assert f"mountPath: {envvars.DEFAULT_PODINFO_DIR}" in text
    for item in ("labels", "annotations", "name", "namespace", "uid"):
        assert f"- path: {item}\n" in text
