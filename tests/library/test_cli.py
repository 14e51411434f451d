"""The podtrace command dispatcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from podtrace import _cli


def test_help_lists_every_subcommand(capsys: object) -> None:
    """`podtrace --help` names every subcommand."""
    assert _cli.main(["--help"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    for name in _cli.SUBCOMMANDS:
        assert name in out


def test_bare_podtrace_prints_usage_and_exits_2() -> None:
    """`podtrace` alone is a usage error: the usage on stderr, exit 2 (`--help` is exit 0)."""
    proc = subprocess.run([sys.executable, "-m", "podtrace._cli"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == "" and proc.stderr.startswith("usage: podtrace <command>")


def test_a_closed_pipe_ends_quietly() -> None:
    """`podtrace --help | head -0`: no traceback, the exit status of a SIGPIPE (141)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "podtrace._cli", "--help"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (128 + signal.SIGPIPE, "")


def test_unknown_command_exits_2() -> None:
    """An unknown subcommand is a usage error, not a traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "podtrace._cli", "frobnicate"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "unknown command" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_collector_extra_is_a_one_line_hint() -> None:
    """Without the collector extra, `podtrace collector` prints the pip hint, not a traceback."""
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.modules['grpc'] = None\n"
        "from podtrace._cli import main; sys.exit(main(['collector']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == _cli.EXTRA_HINT.format(cmd="collector")


def test_python_dash_m_podtrace_is_the_command() -> None:
    """``python -m podtrace`` runs the same command as the ``podtrace`` script."""
    proc = subprocess.run([sys.executable, "-m", "podtrace", "--version"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("podtrace ")
