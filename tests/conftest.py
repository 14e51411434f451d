"""Shared fixtures.  Autouse fixtures restore process-global state between tests."""

from __future__ import annotations
