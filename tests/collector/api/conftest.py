"""Fixtures of the page tests: one headless Chromium per module, a clean tab per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import Chromium


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """One headless Chromium for the module: starting one costs more than most tests."""
    with Chromium(window=(1400, 1000), timeout_s=15) as page:
        yield page


@pytest.fixture
def browser(chromium: Chromium) -> Iterator[Chromium]:
    """The tab, blank, with fresh request and error logs; the test fails if the page threw."""
    chromium.navigate("about:blank")
    chromium.requests.clear()
    chromium.errors.clear()
    yield chromium
    assert not chromium.errors, f"the page threw: {chromium.errors}"
