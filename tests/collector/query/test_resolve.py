"""Resolution of the workload= and service=[&version=] query parameters."""

from __future__ import annotations

import pytest
from podtrace_collector.api.errors import status_of
from podtrace_collector.errors import QueryError
from podtrace_collector.query.resolve import resolve_workload

from tests.collector.query.aggbuilder import CART, NEW, OLD, T0, Buckets


def _registry() -> Buckets:
    b = Buckets()
    b.requests(T0, CART, OLD, 1, version="1.3.0")
    b.requests(T0 + 60, CART, NEW, 1, version="1.4.0")
    b.requests(T0 + 120, CART, "9a8b7c6d5", 1, version="1.4.0")
    b.requests(T0, "default/billing", "2.0", 1, kind="Service", version="2.0")
    b.requests(T0, "a/api", "x", 1, service="api")
    b.requests(T0, "b/api", "y", 1, service="api")
    b.requests(T0, "ops/batch", "z", 1, service="")
    return b


class TestResolveWorkload:
    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({"workload": CART}, (CART, None)),
            ({"workload": CART, "version": "1.3.0"}, (CART, OLD)),
            ({"workload": CART, "version": "1.4.0"}, (CART, "9a8b7c6d5")),
            ({"service": "billing"}, ("default/billing", None)),
            ({"service": "billing", "version": "2.0"}, ("default/billing", "2.0")),
            ({"service": "cart"}, (CART, None)),
            ({"service": "batch"}, ("ops/batch", None)),
        ],
    )
    def test_resolves(self, kwargs: dict[str, str], expected: tuple[str, str | None]) -> None:
        """workload= or service= (with an optional version) name a workload and revision."""
        assert resolve_workload(_registry().revisions(), **kwargs) == expected

    @pytest.mark.parametrize(
        ("kwargs", "status", "code", "hint"),
        [
            ({}, 400, "bad_request", "workload="),
            ({"workload": CART, "service": "cart"}, 400, "bad_request", "not both"),
            ({"workload": "cart"}, 400, "bad_request", "NAMESPACE/NAME"),
            ({"service": " "}, 400, "bad_request", "malformed service"),
            ({"service": "api"}, 400, "bad_request", "a/api"),
            ({"workload": "shop/nope"}, 404, "unknown_workload", "shop/nope"),
            ({"service": "nope"}, 404, "unknown_workload", "nope"),
            ({"workload": CART, "version": "9.9"}, 404, "unknown_revision", "1.3.0"),
        ],
    )
    def test_rejects(self, kwargs: dict[str, str], status: int, code: str, hint: str) -> None:
        """Missing, contradictory, ambiguous and unknown names give clear errors."""
        with pytest.raises(QueryError) as info:
            resolve_workload(_registry().revisions(), **kwargs)
        assert (status_of(info.value), info.value.code) == (status, code)
        assert hint in str(info.value)
