"""The page's graph at scale, in real headless Chromium, against the real API over real aggregates.

Meshes of 12 and 120 workloads (``mesh.py``) go through the real analysis into a SQLite store
served by the collector's API app.  What a person needs first must be on the first screen: the
origin, every affected workload and the entry points, in columns by hop distance, with no label
drawn over another; the rest is one click (expand), a drag, a wheel turn or a search away.
Screenshots land in ``tests/artifacts/``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from podtrace_collector.store.sqlite import SqliteStore

from tests.browser import Chromium
from tests.collector.api import mesh
from tests.collector.api.served import (
    NODES,
    OVERLAPS,
    Served,
    loaded,
    report_of,
    serve,
    shot,
)

pytestmark = pytest.mark.slow

# Where each drawn node is on screen, and whether its disc and name are inside both the graph's
# box and the browser's window as first shown (no scrolling, no panning).
PLACES = """(() => {
  const box = document.getElementById('graph').getBoundingClientRect();
  const inside = (r) => r.left >= box.left && r.right <= box.right && r.top >= box.top
    && r.bottom <= box.bottom && r.left >= 0 && r.top >= 0 && r.right <= innerWidth
    && r.bottom <= innerHeight;
  return Object.fromEntries([...document.querySelectorAll('#graph .node')].map(n => {
    const d = n.querySelector('.dot').getBoundingClientRect();
    const name = n.querySelector('.name').getBoundingClientRect();
    return [n.dataset.workload, { x: (d.left + d.right) / 2, y: (d.top + d.bottom) / 2,
      seen: inside(d) && inside(name) }];
  }));
})()"""

CENTRE = """(() => { const r = document.getElementById('graph').getBoundingClientRect();
  return { x: (r.left + r.right) / 2, y: (r.top + r.bottom) / 2 }; })()"""


def _served(tmp: Path, size: int, depth: int) -> Iterator[tuple[Served, mesh.Mesh]]:
    plan = mesh.plan(size, depth)
    store = SqliteStore(tmp / "podtrace.db")
    mesh.fill(store, plan, time.time())
    served = serve(store)
    yield served, plan
    served.stop()
    store.close()


@pytest.fixture(scope="module")
def mesh12(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, mesh.Mesh]]:
    """12 workloads: ledger 3 hops below web."""
    yield from _served(tmp_path_factory.mktemp("mesh12"), 12, 3)


@pytest.fixture(scope="module")
def mesh120(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, mesh.Mesh]]:
    """120 workloads: ledger 8 hops below web."""
    yield from _served(tmp_path_factory.mktemp("mesh120"), 120, 8)


def _open(page: Chromium, served: Served) -> None:
    loaded(page, served.url + "/")
    report_of(page, mesh.NS + "/ledger")


def _places(page: Chromium) -> dict[str, Any]:
    places: dict[str, Any] = page.evaluate(PLACES)
    return places


def _assert_blast_radius_first(page: Chromium, plan: mesh.Mesh, report: dict[str, Any]) -> None:
    """Origin, affected workloads and entry points all on the first screen, in hop order."""
    affected = {a["workload"]: a["hops"] for a in report["affected_services"]}
    assert affected == plan.hops()  # the engine found the mesh's hops; now the drawing
    entries = {e["workload"] for e in report["entrypoints"]}
    assert entries == {f"{mesh.NS}/web", f"{mesh.NS}/mobile"}
    places = _places(page)
    must = {plan.origin, *affected, *entries}
    assert must <= set(places)
    assert [w for w in sorted(must) if not places[w]["seen"]] == []
    # Columns by hop: a workload more hops away sits further left, one hop a column.
    xs = {w: places[w]["x"] for w in must}
    by_hop = sorted({**affected, plan.origin: 0}.items(), key=lambda kv: kv[1])
    for (near, h1), (far, h2) in itertools.pairwise(by_hop):
        assert (xs[far] < xs[near] - 20) if h2 > h1 else abs(xs[far] - xs[near]) < 1, (near, far)


def _assert_no_overlap(page: Chromium) -> int:
    result = page.evaluate(OVERLAPS)
    assert result["clashes"] == []
    labels: int = result["labels"]
    return labels


def test_twelve_workloads_all_drawn_in_hop_columns(
    mesh12: tuple[Served, mesh.Mesh], browser: Chromium
) -> None:
    """At 12 workloads every one is drawn, the unaffected faded, and no label overlaps another."""
    served, plan = mesh12
    _open(browser, served)
    shot(browser, "page-graph-12.png")
    report = served.api(f"/api/v1/blast-radius?workload={plan.origin}")
    _assert_blast_radius_first(browser, plan, report)
    nodes = {n["workload"]: n for n in browser.evaluate(NODES)}
    assert set(nodes) == set(plan.workloads)
    assert browser.evaluate("document.getElementById('graph-expand').hidden") is True
    assert {"absorbing", "group-core"} <= set(nodes[f"{mesh.NS}/offers"]["cls"])
    faded = browser.evaluate(
        "[...document.querySelectorAll('#graph .node')].filter("
        "n => getComputedStyle(n).opacity < 1).map(n => n.dataset.workload).sort()"
    )
    assert faded == sorted([f"{mesh.NS}/admin", *plan.side])
    assert _assert_no_overlap(browser) >= 2 * len(plan.workloads)  # names and captions at least


def test_hundred_and_twenty_workloads_show_the_blast_radius_first(
    mesh120: tuple[Served, mesh.Mesh], browser: Chromium
) -> None:
    """At 120 workloads the blast radius fills the first screen; the rest expands on request."""
    served, plan = mesh120
    _open(browser, served)
    shot(browser, "page-graph-120.png")
    report = served.api(f"/api/v1/blast-radius?workload={plan.origin}")
    _assert_blast_radius_first(browser, plan, report)
    drawn = {n["workload"] for n in browser.evaluate(NODES)}
    assert drawn == set(plan.core)
    assert browser.evaluate("document.getElementById('graph').dataset.hidden") == str(
        120 - len(plan.core)
    )
    _assert_no_overlap(browser)
    button = "document.getElementById('graph-expand')"
    assert browser.evaluate(f"{button}.textContent") == "show 109 more workloads (not affected)"
    browser.evaluate(f"{button}.click()")
    browser.wait_for("document.querySelectorAll('#graph .node').length === 120")
    shot(browser, "page-graph-120-expanded.png")
    assert browser.evaluate(f"{button}.getAttribute('aria-pressed')") == "true"
    places = _places(browser)
    for w in (plan.origin, *plan.hops()):
        assert places[w]["seen"], w  # expanding keeps the blast radius in view
    _assert_no_overlap(browser)
    browser.evaluate(f"{button}.click()")
    browser.wait_for(f"document.querySelectorAll('#graph .node').length === {len(plan.core)}")


def _mouse(page: Chromium, kind: str, x: float, y: float, **extra: Any) -> None:
    page.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **extra})


def test_wheel_zooms_drag_pans_and_fit_resets(
    mesh120: tuple[Served, mesh.Mesh], browser: Chromium
) -> None:
    """Real mouse input: the wheel zooms about the pointer, a drag pans, "fit" restores the view."""
    served, plan = mesh120
    _open(browser, served)
    first = _places(browser)
    scale = float(browser.evaluate("document.getElementById('graph').dataset.scale"))
    origin = first[plan.origin]
    _mouse(browser, "mouseWheel", origin["x"], origin["y"], deltaX=0, deltaY=-240)
    browser.wait_for(f"+document.getElementById('graph').dataset.scale > {scale * 1.2}")
    zoomed = _places(browser)
    # Zooming about the pointer keeps the point under it where it was.
    assert abs(zoomed[plan.origin]["x"] - origin["x"]) < 2
    assert abs(zoomed[plan.origin]["y"] - origin["y"]) < 2
    web = f"{mesh.NS}/web"
    assert zoomed[web]["x"] < first[web]["x"] - 20  # further away from the origin now
    start = zoomed[plan.origin]
    _mouse(browser, "mousePressed", start["x"], start["y"], button="left", clickCount=1)
    for step in range(1, 6):
        _mouse(browser, "mouseMoved", start["x"] - 30 * step, start["y"] + 10 * step, button="left")
    _mouse(browser, "mouseReleased", start["x"] - 150, start["y"] + 50, button="left", clickCount=1)
    panned = _places(browser)[plan.origin]
    assert abs(panned["x"] - (start["x"] - 150)) < 2 and abs(panned["y"] - (start["y"] + 50)) < 2
    browser.evaluate("document.getElementById('zoom-fit').click()")
    assert browser.evaluate("document.getElementById('graph').dataset.scale") == f"{scale:.3f}"
    again = _places(browser)[plan.origin]
    assert abs(again["x"] - origin["x"]) < 1 and abs(again["y"] - origin["y"]) < 1
    browser.evaluate("document.getElementById('zoom-in').click()")
    assert float(browser.evaluate("document.getElementById('graph').dataset.scale")) > scale


def test_search_finds_and_centres_a_collapsed_workload(
    mesh120: tuple[Served, mesh.Mesh], browser: Chromium
) -> None:
    """A workload not drawn yet is found by part of its name, drawn, centred and focused."""
    served, plan = mesh120
    _open(browser, served)
    target = plan.side[77]
    assert target not in _places(browser)
    options = browser.evaluate("document.querySelectorAll('#graph-workloads option').length")
    assert options == 120
    browser.evaluate(
        f"document.getElementById('graph-search').value = '{target.split('/')[1].upper()}';"
        "document.querySelector('#graph-find button').click()"
    )
    browser.wait_for(f"document.getElementById('graph').dataset.found === '{target}'")
    places = _places(browser)
    centre = browser.evaluate(CENTRE)
    assert abs(places[target]["x"] - centre["x"]) < 2 and abs(places[target]["y"] - centre["y"]) < 2
    found = f"document.querySelector('#graph .node[data-workload=\"{target}\"]')"
    assert browser.evaluate(f"{found}.classList.contains('found')") is True
    assert browser.evaluate(f"document.activeElement === {found}") is True
    assert browser.evaluate("document.getElementById('graph-search-status').textContent") == (
        f"found {target}"
    )
    shot(browser, "page-graph-search.png")
    browser.evaluate(
        "document.getElementById('graph-search').value = 'no-such-thing';"
        "document.querySelector('#graph-find button').click()"
    )
    assert browser.evaluate("document.getElementById('graph-search-status').textContent") == (
        "no workload matches “no-such-thing”"
    )


def test_a_moved_view_survives_a_refresh(tmp_path: Path, browser: Chromium) -> None:
    """New data redraws the graph without undoing the person's zoom and pan."""
    for served, plan in _served(tmp_path, 12, 3):
        loaded(browser, served.url + "/?refresh=1")
        report_of(browser, plan.origin)
        browser.evaluate("document.getElementById('zoom-in').click()")
        browser.evaluate("document.getElementById('zoom-in').click()")
        view = "document.querySelector('#graph > g').getAttribute('transform')"
        moved = browser.evaluate(view)
        browser.evaluate("document.querySelector('#graph .node').stale = true")
        mesh.fill(served.store, plan, time.time())  # the same traffic again: new counts
        browser.wait_for("!document.querySelector('#graph .node').stale")
        assert browser.evaluate(view) == moved
        browser.evaluate("document.getElementById('zoom-fit').click()")
        assert browser.evaluate(view) != moved
