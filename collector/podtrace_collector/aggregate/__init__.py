"""Mergeable per-minute aggregates and histograms: the contract between analysis, store and query.

``stats`` holds ``Aggregates`` and its parts, ``histogram`` the log-bucketed ``Histogram``.
"""
