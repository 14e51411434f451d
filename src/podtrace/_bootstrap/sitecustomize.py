"""Loaded by Python at start-up in programs run under ``podtrace run`` (it is on PYTHONPATH).

Configures tracing before the program's own code runs, then hands over to any other
``sitecustomize`` module that this one shadows, the way ``opentelemetry-instrument`` does.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _init() -> None:
    if os.environ.get("PODTRACE_BOOTSTRAP") != "1":
        return
    try:
        import podtrace

        podtrace.init()
    except ImportError as exc:  # podtrace is installed for another Python (pipx, say)
        logging.getLogger("podtrace").warning(
            "podtrace: %s cannot import %s, so this program runs without tracing; "
            "install podtrace in this Python's environment (%s -m pip install podtrace)",
            sys.executable,
            exc.name or "podtrace",
            sys.executable,
        )
    except Exception:  # the program must run even if tracing cannot start
        logging.getLogger("podtrace").warning("podtrace: start-up failed", exc_info=True)


def _chain_other_sitecustomize() -> None:
    others = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:
        logging.getLogger("podtrace").warning(
            "podtrace: the app's sitecustomize failed", exc_info=True
        )


_chain_other_sitecustomize()
_init()
