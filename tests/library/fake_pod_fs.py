"""A fake pod filesystem for the detector: downward-API volume, service account, proc files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class FakePod:
    """A fake pod filesystem under ``root``; the detector's paths point into it."""

    root: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def podinfo(self) -> Path:
        return self.root / "podinfo"

    def write_podinfo(self, name: str, text: str) -> None:
        """Write one downward-API volume file."""
        self.podinfo.mkdir(parents=True, exist_ok=True)
        (self.podinfo / name).write_text(text)

    def write_namespace(self, namespace: str) -> None:
        """Write the service-account namespace file."""
        sa = self.root / "serviceaccount"
        sa.mkdir(parents=True, exist_ok=True)
        (sa / "namespace").write_text(namespace)

    def write_proc(self, *, cgroup: str = "", mountinfo: str = "") -> None:
        """Write the cgroup and mountinfo samples."""
        (self.root / "cgroup").write_text(cgroup)
        (self.root / "mountinfo").write_text(mountinfo)
