"""Getting the rollouts' blast radius from the gateway once their traces are complete."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from podtrace_collector.demo._cluster import Say
from podtrace_collector.errors import DemoError

POLL_S = 1.0


async def wait_for_reports(
    api: str,
    rollouts: list[tuple[str, str]],
    *,
    trace_timeout_s: float,
    timeout_s: float,
    say: Say,
) -> list[dict[str, Any]]:
    """Poll ``/api/v1/blast-radius`` for each ``(workload, revision)`` until its report stops
    changing; return them in order.

    Traces complete ``trace_timeout_s`` after their last span, so nothing is final before that;
    after it, two identical answers in a row mean the last traces have been analysed.

    Raises:
        DemoError: the API answered with an error, or a report did not settle within *timeout_s*.
    """
    say(f"waiting for the last traces to complete (trace timeout {trace_timeout_s:g}s)")
    await asyncio.sleep(trace_timeout_s + 0.5)
    async with httpx.AsyncClient(timeout=5.0) as client:
        return [await _settled(client, api, w, r, timeout_s) for w, r in rollouts]


async def _settled(
    client: httpx.AsyncClient, api: str, workload: str, revision: str, timeout_s: float
) -> dict[str, Any]:
    params = {"workload": workload, "revision": revision}
    deadline = time.monotonic() + timeout_s
    previous: tuple[object, ...] | None = None
    report: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        report = await _fetch(client, f"{api}/api/v1/blast-radius", params)
        if report is not None:
            slowed = report.get("latency_impact") or {}
            key = (
                report.get("requests"),
                report.get("errors"),
                report.get("affected_traces"),
                [len(v) for v in slowed.values()],
            )
            if key == previous:
                return report
            previous = key
        await asyncio.sleep(POLL_S)
    if report is not None:
        return report
    raise DemoError(f"no blast-radius report for {workload}@{revision} after {timeout_s:.0f}s")


async def _fetch(
    client: httpx.AsyncClient, url: str, params: dict[str, str]
) -> dict[str, Any] | None:
    try:
        response = await client.get(url, params=params)
    except httpx.HTTPError as exc:
        raise DemoError(f"the gateway's API did not answer: {exc}") from exc
    if response.status_code == 404:
        return None  # the revision's spans are not analysed yet
    if response.status_code != 200:
        raise DemoError(f"GET {response.url} answered {response.status_code}: {response.text}")
    report: dict[str, Any] = response.json()
    return report
