"""The public face of the podtrace package."""

from __future__ import annotations

import podtrace


def test_exported_members() -> None:
    """__all__ is sorted and lists exactly the public API."""
    assert podtrace.__all__ == [
        "ExportStats",
        "KubernetesResourceDetector",
        "__version__",
        "detect_kubernetes_attributes",
        "init",
        "stats",
    ]
    assert sorted(podtrace.__all__) == podtrace.__all__
    for name in podtrace.__all__:
        assert hasattr(podtrace, name)


def test_stats_before_init_are_zero() -> None:
    """stats() works before init() and reports nothing."""
    assert podtrace.stats() == podtrace.ExportStats()
