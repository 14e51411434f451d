"""Which Python a command runs, and whether that Python can import podtrace.

``podtrace run`` puts its bootstrap ``sitecustomize`` on PYTHONPATH, and the bootstrap imports
podtrace *in the program's interpreter*. When podtrace is installed for another Python (pipx
installs every tool in a virtualenv of its own), that import fails and the program runs
untraced. So before it execs, ``podtrace run`` works out which Python the command runs (the
command itself when it is named ``python…``, else the interpreter on its ``#!`` line, which is
how console scripts such as gunicorn start) and, unless it is this very interpreter, asks it.
A command that is not visibly Python (a shell script, a binary) is not checked; the bootstrap
then says the same thing at start-up.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping

_PYTHON_NAME = re.compile(r"^(python|pypy)[0-9.]*$")
_CANNOT = 3  # the probe's answer for "cannot import"
_PROBE = (
    "import importlib.util as u, sys; "
    f"sys.exit(0 if u.find_spec('podtrace') and u.find_spec('opentelemetry.sdk') else {_CANNOT})"
)
PROBE_TIMEOUT_S = 10.0


def command_python(executable: str, search_path: str | None) -> str | None:
    """The Python interpreter ``executable`` runs, or None when it is not visibly Python."""
    if _PYTHON_NAME.match(os.path.basename(executable)):
        return executable
    interpreter = _shebang_interpreter(executable, search_path)
    if interpreter and _PYTHON_NAME.match(os.path.basename(interpreter)):
        return interpreter
    return None


def _shebang_interpreter(path: str, search_path: str | None) -> str | None:
    try:
        with open(path, "rb") as file:
            head = file.read(1024)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    words = lines[0][2:].split()
    if not words:
        return None
    program = os.path.basename(words[0])
    if program == "env":  # #!/usr/bin/env [-S] [VAR=value] python3
        names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        return shutil.which(names[0], path=search_path) if names else None
    if program == "sh" and len(lines) > 1 and lines[1].startswith("'''exec'"):
        # pip's launcher when the interpreter's path is too long for a #! line:
        # '''exec' "/long/path/bin/python" "$0" "$@"
        try:
            parts = shlex.split(lines[1])
        except ValueError:
            return None
        return parts[1] if len(parts) > 1 else None
    return words[0]


def same_environment(python: str) -> bool:
    """Whether ``python`` is this interpreter, in this environment (same bin directory)."""
    here = os.path.abspath(sys.executable)
    there = os.path.abspath(python)
    try:
        return os.path.dirname(here) == os.path.dirname(there) and os.path.samefile(here, there)
    except OSError:
        return False


def cannot_import_podtrace(python: str, environ: Mapping[str, str]) -> bool:
    """True when ``python``, started with ``environ``, cannot import podtrace or the SDK.

    False when it can, or when that cannot be told (the probe failed to run or crashed): the
    check is there to catch a sure mistake, never to stop a program on a guess.
    """
    if same_environment(python):
        return False
    try:
        probe = subprocess.run(
            [python, "-c", _PROBE],
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == _CANNOT


def advice(command: str, python: str) -> str:
    """What to tell the user when ``python`` (run by ``command``) cannot import podtrace."""
    if not _PYTHON_NAME.match(os.path.basename(command)):
        subject = f"{command} runs {python}, which"
    else:
        subject = python if command == python else f"{command} ({python})"
    bin_dir = os.path.dirname(os.path.abspath(python))
    return (
        f"podtrace run: {subject} cannot import podtrace, so the program would run without "
        "tracing; it was not started.\n"
        f"  This podtrace is installed for another Python: {sys.executable}\n"
        "  (pipx, for one, installs every tool in an environment of its own).\n"
        "  Install podtrace where the program runs and use that podtrace, for example:\n"
        f"    {python} -m pip install podtrace\n"
        f"    {os.path.join(bin_dir, 'podtrace')} run -- {command} ..."
    )
