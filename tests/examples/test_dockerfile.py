"""examples/shop/Dockerfile: its build context is enough to build podtrace's wheel.

There is no Docker engine here, so the test does what the image build does with the files it is
given: it reads the Dockerfile's COPY lines, copies exactly those paths from the repository into a
temporary ``/src`` (leaving out what ``.dockerignore`` excludes, as Docker does), builds the wheel
there with pip and hatchling (no network), checks that the wheel holds the library, the collector
and the demo shop, and installs it to import them.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "examples" / "shop" / "Dockerfile"
SHOP = ROOT / "examples" / "shop"


@dataclass
class Stage:
    """One ``FROM ... AS name`` stage: its context COPY lines and RUN commands, in order."""

    name: str
    base: str
    copies: list[tuple[list[str], str, str]] = field(default_factory=list)  # sources, dest, workdir
    runs: list[str] = field(default_factory=list)
    copies_from: list[str] = field(default_factory=list)  # stages it copies from
    workdir: str = "/"


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def parse_stages(text: str) -> dict[str, Stage]:
    """The stages of a Dockerfile (only what this test needs: FROM, WORKDIR, COPY, RUN)."""
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            base, *alias = re.split(r"\s+as\s+", rest, flags=re.IGNORECASE)
            name = alias[0] if alias else f"stage-{len(stages)}"
            parent = stages.get(base)
            stage = stages[name] = Stage(name, base, workdir=parent.workdir if parent else "/")
        elif stage is None:
            continue
        elif keyword == "WORKDIR":
            stage.workdir = str(PurePosixPath(stage.workdir, rest))
        elif keyword == "RUN":
            stage.runs.append(rest)
        elif keyword == "COPY":
            args = shlex.split(rest)
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            source = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source is not None:
                stage.copies_from.append(source)
            else:
                stage.copies.append((paths[:-1], paths[-1], stage.workdir))
    return stages


def _ignore_patterns() -> list[re.Pattern[str]]:
    path = ROOT / ".dockerignore"
    lines = path.read_text().splitlines() if path.exists() else []
    patterns = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not modelled by this test"
        regex = re.escape(line.strip("/")).replace(r"\*\*/", "(?:.*/)?")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        patterns.append(re.compile(regex + "$"))
    return patterns


def _ignored(rel: PurePosixPath, patterns: list[re.Pattern[str]]) -> bool:
    prefixes = [PurePosixPath(*rel.parts[: i + 1]).as_posix() for i in range(len(rel.parts))]
    return any(p.match(prefix) for p in patterns for prefix in prefixes)


def copy_context(stage: Stage, root: Path) -> Path:
    """Lay out under *root* what the stage's COPY lines put in the image; its last WORKDIR."""
    patterns = _ignore_patterns()
    for sources, dest, workdir in stage.copies:
        target = root / PurePosixPath(workdir, dest).relative_to("/")
        for source in sources:
            src = ROOT / source
            assert src.exists(), f"COPY {source}: not in the repository"
            if src.is_file():
                into = target / src.name if dest.endswith("/") else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, into)
                continue
            for path in src.rglob("*"):
                rel = PurePosixPath(path.relative_to(ROOT).as_posix())
                if path.is_file() and not _ignored(rel, patterns):
                    into = target / path.relative_to(src)
                    into.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, into)
    return root / PurePosixPath(stage.copies[-1][2]).relative_to("/")


STAGES = parse_stages(DOCKERFILE.read_text())


def test_the_images_install_the_wheel_the_first_stage_builds() -> None:
    """`collector` and `shop` install the wheel of the `wheel` stage, with their extras."""
    wheel = STAGES["wheel"]
    assert any(re.search(r"\bpip wheel\b.*--no-deps.* \.$", run) for run in wheel.runs)
    collector, shop = STAGES["collector"], STAGES["shop"]
    assert shop.base == "collector"
    assert collector.copies_from == ["wheel"]
    assert any("[collector,clickhouse]" in run for run in collector.runs)
    assert any("[demo]" in run for run in shop.runs)
    (sources, dest, _), = shop.copies  # fmt: skip
    assert (sources, dest) == (["examples/shop"], "/app/shop")


@pytest.mark.slow
def test_the_wheel_builds_from_exactly_what_the_dockerfile_copies(tmp_path: Path) -> None:
    """The copied files build a wheel holding the library, the collector and the demo shop."""
    src = copy_context(STAGES["wheel"], tmp_path / "image")
    out = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("podtrace-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shop_files = {p.name for p in SHOP.iterdir() if p.is_file()}
    for name in shop_files:
        assert f"podtrace_collector/demo/examples/shop/{name}" in names
    for module in ("podtrace/__init__.py", "podtrace/_cli.py", "podtrace_collector/cli.py"):
        assert module in names
    assert not [n for n in names if "__pycache__" in n]

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    probe = (
        "import sys, podtrace, podtrace_collector.cli\n"
        "from podtrace_collector.demo._setup import shop_path\n"
        "sys.path.insert(0, str(shop_path()))\n"
        "import shop\n"
        "print(podtrace.__file__, podtrace_collector.cli.__file__, shop.__file__, sep='\\n')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for imported in run.stdout.split():
        assert Path(imported).is_relative_to(site), imported
