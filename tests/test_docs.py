"""The docs only point at things that exist: files, make targets, podtrace subcommands, flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from podtrace import _cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MAKE = re.compile(r"`make ([a-z-]+)")
PODTRACE = re.compile(r"^\s*(?:\$ )?podtrace ([a-z][a-z-]*)", re.MULTILINE)
SHELL_BLOCK = re.compile(r"```(?:sh|bash|console|shell)\n(.*?)```", re.DOTALL)
INLINE_CMD = re.compile(r"`podtrace ([a-z][a-z-]*)[^`]*`")
REPO_PATH = re.compile(r"`((?:src|collector|examples|tests|bench|docs)/[\w./-]+)`")


def _ids(pages: list[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in pages]


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.MULTILINE))


def test_every_doc_page_is_linked_from_the_readme() -> None:
    """README's documentation list reaches every page in docs/."""
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, f"docs/{page.name} is not linked from README.md"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link points at a file or folder of the repository."""
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+://|^#|^mailto:", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_make_targets_exist(page: Path) -> None:
    """Every `make X` named in the docs is a Makefile target."""
    targets = _make_targets()
    for target in MAKE.findall(page.read_text()):
        assert target in targets, f"{page.name}: `make {target}` is not a Makefile target"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_podtrace_subcommands_exist(page: Path) -> None:
    """Every `podtrace X` command line in the docs names a real subcommand."""
    text = page.read_text()
    cmds = INLINE_CMD.findall(text)
    for block in SHELL_BLOCK.findall(text):
        cmds += PODTRACE.findall(block)
    for cmd in cmds:
        assert cmd in _cli.SUBCOMMANDS, f"{page.name}: `podtrace {cmd}` is not a subcommand"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_repository_paths_exist(page: Path) -> None:
    """Every repository path quoted in backticks exists."""
    for rel in REPO_PATH.findall(page.read_text()):
        rel = rel.rstrip(".")
        if any(ch in rel for ch in "*<>{}"):
            continue
        assert (ROOT / rel).exists(), f"{page.name}: `{rel}` does not exist"
