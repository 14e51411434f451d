"""Build hook: compile the optional C scanner ``podtrace_collector.receive._wire``.

The scanner speeds up OTLP protobuf ingest (see ``collector/podtrace_collector/receive/_wire.c``);
everything works without it, through the protobuf runtime.  So a missing compiler or missing
Python headers is a warning, never a failed install.  Set ``PODTRACE_NO_EXTENSION=1`` to skip it.

An editable install (``make install``) compiles into the source tree, next to ``_wire.c``; a wheel
gets the compiled module force-included and is tagged for this interpreter and platform.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("collector/podtrace_collector/receive/_wire.c")
TARGET = "podtrace_collector/receive/_wire"


def compile_extension(source: Path, output: Path) -> str | None:
    """Compile ``source`` into the extension module ``output``; the reason when it cannot."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
    if not shutil.which(compiler[0]):
        return f"no C compiler ({compiler[0]})"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        return f"no Python headers in {include}"
    command = [
        *compiler,
        *shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC"),
        "-shared",
        "-O2",
        "-Wall",
        "-Werror",
        f"-I{include}",
        str(source),
        "-o",
        str(output),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"{' '.join(command)} failed:\n{done.stderr}"
    return None


class CustomBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles ``_wire.c`` for wheels and editable installs; never fails the build."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("PODTRACE_NO_EXTENSION"):
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        if version == "editable":
            output = (root / SOURCE).with_name(f"_wire{suffix}")
        else:
            output = Path(tempfile.mkdtemp(prefix="podtrace-build-")) / f"_wire{suffix}"
        why = compile_extension(root / SOURCE, output)
        if why is not None:
            print(f"podtrace: C scanner not built, ingest uses protobuf ({why})", file=sys.stderr)
            return
        if version != "editable":
            build_data["force_include"][str(output)] = f"{TARGET}{suffix}"
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
