"""The docs only point at things that exist: files, make targets, podtrace subcommands, flags,
metrics.

Flags are checked against each subcommand's real ``--help``; metric names against the families a
running gateway and sidecar declare on ``/metrics`` (HELP/TYPE lines, so that a labelled counter
counts before its first sample).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import tomllib
import urllib.request
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
    """Every repository path quoted in backticks exists (or is output .gitignore names)."""
    generated = set((ROOT / ".gitignore").read_text().splitlines())
    for rel in REPO_PATH.findall(page.read_text()):
        rel = rel.rstrip(".")
        if any(ch in rel for ch in "*<>{}") or rel in generated:
            continue
        assert (ROOT / rel).exists(), f"{page.name}: `{rel}` does not exist"


# --- every metric and every flag the docs name exists -----------------------------------------

METRIC = re.compile(r"\bpodtrace_[a-z0-9_]+")
SAMPLE_SUFFIXES = ("_bucket", "_count", "_sum", "_created")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FLAG = re.compile(r"(?<![\w-])--?[a-zA-Z][\w-]*")
COMMAND = re.compile(r"(?:^|[\s/(])podtrace ([a-z][a-z-]*)((?: .*)?)$")
END_OF_OPTIONS = re.compile(r" -- | --$|\s[|;#]|&&")
# Flags the docs quote from other programs, where they explain how podtrace works with them.
OTHER_PROGRAMS = {
    "--preload": "gunicorn",
    "--workers": "uvicorn",
    "--some-flag": "collector.md's placeholder for any flag",
}


def _not_metrics() -> set[str]:
    """Names that look like metrics but are a package and the entry points pyproject declares."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = pyproject["project"]["entry-points"].values()
    return {"podtrace_collector"} | {name for group in groups for name in group}


@pytest.fixture(scope="module")
def metric_families() -> set[str]:
    """The families a real gateway and a real sidecar declare on /metrics (HELP/TYPE lines)."""
    from tests.collector.otlp_helpers import running, test_config

    sidecar = test_config(mode="sidecar", forward=("127.0.0.1:9",))
    families: set[str] = set()
    for config, extra in ((test_config(), {}), (sidecar, {"pod_attributes": {}})):
        with running(config, **extra) as collector:
            url = f"http://127.0.0.1:{collector.api_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
        families |= {
            line.split()[2] for line in text.splitlines() if line.startswith(("# HELP", "# TYPE"))
        }
    return families


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_metric_names_exist(page: Path, metric_families: set[str]) -> None:
    """Every podtrace_* metric the docs name is declared by a running collector's registry."""
    assert "podtrace_spans_received_total" in metric_families  # the scrape worked
    names = set(METRIC.findall(page.read_text())) - _not_metrics()
    missing = {
        name
        for name in names
        if name not in metric_families
        and not any(name.removesuffix(s) in metric_families for s in SAMPLE_SUFFIXES)
    }
    assert not missing, f"{page.name}: no such metric: {sorted(missing)}"


@pytest.fixture(scope="module")
def command_flags() -> dict[str, set[str]]:
    """Each subcommand's options, read from its real `--help` output."""
    flags = {}
    for cmd in _cli.SUBCOMMANDS:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            _cli.main([cmd, "--help"])
        # argparse lists each option on a line indented by two spaces: "  -V [V], --version [V]"
        option_lines = [line for line in out.getvalue().splitlines() if line.startswith("  -")]
        flags[cmd] = {f for line in option_lines for f in FLAG.findall(line.split("  ")[1])}
        assert "--help" in flags[cmd], cmd
    return flags


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    blocks, info, body = [], None, []
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if info is None:
                info, body = line.lstrip()[3:].strip(), []
            else:
                blocks.append((info, "\n".join(body)))
                info = None
        elif info is not None:
            body.append(line)
    return blocks


def _code_lines(text: str) -> list[str]:
    """Lines of shell and plain code blocks (continuations joined) and inline code spans."""
    lines = []
    for info, block in _fenced_blocks(text):
        if info not in {"", "sh", "bash", "console", "shell", "text"}:
            continue
        block = re.sub(r"\\\n", " ", block)
        block = re.sub(r"\n\s+(?=\[)", " ", block)  # usage lines continued as "    [--opt]"
        lines += block.splitlines()
    return lines + CODE_SPAN.findall(text)


def _podtrace_commands(text: str) -> list[tuple[str, str]]:
    """(subcommand, its options part) of every `podtrace <subcommand> ...` in code."""
    found = []
    for line in _code_lines(text):
        match = COMMAND.search(line.strip().removeprefix("$ "))
        if match and match.group(1) in _cli.SUBCOMMANDS:
            found.append((match.group(1), END_OF_OPTIONS.split(match.group(2))[0]))
    return found


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_flags_in_podtrace_commands_exist(page: Path, command_flags: dict[str, set[str]]) -> None:
    """Every option of a `podtrace X ...` line in the docs is an option of `podtrace X`."""
    for cmd, options in _podtrace_commands(page.read_text()):
        unknown = set(FLAG.findall(options)) - command_flags[cmd]
        assert not unknown, f"{page.name}: `podtrace {cmd}` has no {sorted(unknown)}: {options}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_flags_quoted_in_prose_exist(page: Path, command_flags: dict[str, set[str]]) -> None:
    """A flag quoted on its own (`--flag ...`) is an option of some podtrace command."""
    known = set().union(*command_flags.values()) | set(OTHER_PROGRAMS)
    for span in CODE_SPAN.findall(page.read_text()):
        if span.startswith("--"):
            flag = FLAG.match(span)
            assert flag and flag.group() in known, f"{page.name}: no podtrace option `{span}`"


def test_the_doc_scanners_find_what_they_check(command_flags: dict[str, set[str]]) -> None:
    """The scanners see commands in blocks, continued usage lines and inline code."""
    text = (
        "```sh\n$ podtrace collector --mode sidecar \\\n    --bind 0.0.0.0 | tee x\n"
        "podtrace blast-radius NAME [--revision R]\n         [--list]\n```\n"
        "Run `podtrace run --endpoint http://x -- python app.py --port 1`.\n"
        "```\nkubectl -n podtrace rollout status deploy/podtrace-gateway\n```\n"
    )
    assert _podtrace_commands(text) == [
        ("collector", " --mode sidecar      --bind 0.0.0.0"),
        ("blast-radius", " NAME [--revision R] [--list]"),
        ("run", " --endpoint http://x"),
    ]
    assert {"--mode", "--bind"} <= command_flags["collector"]
    assert {"--revision", "--list", "--version", "-V"} <= command_flags["blast-radius"]


# --- api.md's JSON examples show the fields the API returns -----------------------------------

API_EXAMPLES = {  # the section of api.md -> the request its JSON example answers
    "## `GET /api/v1/blast-radius`": "/api/v1/blast-radius?workload=shop/cart",
    "## `GET /api/v1/rollouts`": "/api/v1/rollouts",
    "## `GET /api/v1/workloads`": "/api/v1/workloads",
    "## `GET /api/v1/graph`": "/api/v1/graph",
}


def _field_differences(doc: object, real: object, path: str = "$") -> list[str]:
    if isinstance(doc, dict) and isinstance(real, dict):
        out = [f"{path}.{k}: documented, not returned" for k in doc.keys() - real.keys()]
        out += [f"{path}.{k}: returned, not documented" for k in real.keys() - doc.keys()]
        for key in doc.keys() & real.keys():
            out += _field_differences(doc[key], real[key], f"{path}.{key}")
        return out
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        if not isinstance(real, list) or not real:
            return [f"{path}: the test's data leaves it empty, so its fields go unchecked"]
        return _field_differences(doc[0], real[0], f"{path}[0]")
    return []


def _json_example(text: str, heading: str) -> object:
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    return json.loads(next(body for info, body in _fenced_blocks(section) if info == "json"))


def test_api_examples_show_every_field_the_api_returns() -> None:
    """Each endpoint's JSON example in api.md has exactly the fields a real answer has."""
    from podtrace_collector.store.memory import MemoryStore

    from tests.collector.api.test_routes import Server, make_app, scenario

    text = (ROOT / "docs" / "api.md").read_text()
    server = Server(make_app())
    try:
        server.app.state.store = MemoryStore()
        server.app.state.store.write(scenario(time.time()))
        for heading, path in API_EXAMPLES.items():
            with urllib.request.urlopen(server.url + path, timeout=10) as response:
                real = json.loads(response.read())
            differences = _field_differences(_json_example(text, heading), real)
            assert not differences, f"api.md {heading}: {differences}"
    finally:
        server.stop()
