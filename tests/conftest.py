"""The root of the test tree.

Tests mirror the code: ``tests/library`` the ``podtrace`` package, ``tests/collector`` the
``podtrace_collector`` package (one folder per sub-package), ``tests/examples`` the examples.
Helpers are plain modules imported by their full name (``from tests.collector.otlp_helpers import
...``; pytest puts the repository root on ``sys.path``, see ``pythonpath`` in pyproject.toml);
fixtures live in the ``conftest.py`` beside the tests that use them, and those that touch process
globals (environment, the global TracerProvider, logging) restore them.
"""
