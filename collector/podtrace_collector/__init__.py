"""podtrace collector: receive OTLP, assemble traces, compute the blast radius of rollouts.

Pipeline, one package each: ``receive`` → ``forward`` / ``assemble`` → ``analyse`` → ``store`` →
``api``.  Requires the ``collector`` extra: ``pip install "podtrace[collector]"``.
"""

from __future__ import annotations

__all__: list[str] = []
