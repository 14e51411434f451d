"""A generated service mesh of any size, for drawing a blast radius at scale.

Namespace ``mesh``.  Two entry points, ``web`` and ``mobile``, call down a chain of tiers to
``ledger``: ``web -> tier-(depth-1) -> ... -> tier-1 -> ledger`` and ``mobile -> tier-(depth-2)``,
so ``ledger`` sits ``depth`` hops below ``web``.  ``web`` also calls ``offers``, which calls
``ledger`` and falls back when it fails (it absorbs the failures).  ``admin`` is a third entry
point that reaches only side services.  The side services (``svc-000`` …) fill the mesh up to
``size`` workloads: the first ones are called by the chain (one hop beside the blast radius), the
others by side services, in a tree.  Ledger rolls out a revision that fails a quarter of its
requests; every trace goes through the real analysis (the Analyzer) into the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podtrace_collector.aggregate.stats import Aggregates
from podtrace_collector.model import Resource, Span
from podtrace_collector.store.sqlite import SqliteStore

from tests.collector.analyse.tracebuilder import Trace, deployment
from tests.collector.api.served import add, minute

NS = "mesh"
OLD_LEDGER, BAD_LEDGER = "4a5b6c7d8", "9e8d7c6b5"
_FANOUT = 3  # side services called by each side service of the tree


@dataclass
class Mesh:
    """The workloads of a mesh and who calls whom."""

    size: int
    depth: int
    side: list[str] = field(default_factory=list)
    calls: dict[str, list[str]] = field(default_factory=dict)  # caller -> side services

    @property
    def origin(self) -> str:
        return f"{NS}/ledger"

    @property
    def tiers(self) -> list[str]:
        """The chain from the origin's caller (1 hop) up to the tier below ``web``."""
        return [f"{NS}/tier-{h}" for h in range(1, self.depth)]

    @property
    def core(self) -> list[str]:
        """Every workload of the blast radius: origin, chain, entry points, the absorber."""
        return [self.origin, *self.tiers, f"{NS}/web", f"{NS}/mobile", f"{NS}/offers"]

    @property
    def workloads(self) -> list[str]:
        return [*self.core, f"{NS}/admin", *self.side]

    def hops(self) -> dict[str, int]:
        """The hop distance the engine must find for each affected workload."""
        out = {t: h for h, t in enumerate(self.tiers, start=1)}
        out[f"{NS}/web"] = self.depth
        out[f"{NS}/mobile"] = self.depth - 1
        return out


def plan(size: int, depth: int) -> Mesh:
    """Name the workloads of a mesh of ``size`` workloads whose origin is ``depth`` hops deep."""
    mesh = Mesh(size, depth)
    n_side = size - len(mesh.core) - 1
    assert depth >= 3 and n_side > 0, "too small a mesh"
    mesh.side = [f"{NS}/svc-{i:03d}" for i in range(n_side)]
    callers = [*mesh.tiers, mesh.origin, f"{NS}/web", f"{NS}/mobile"]
    beside = min(n_side, 2 * len(callers))
    for i, svc in enumerate(mesh.side):
        caller = callers[i % len(callers)] if i < beside else mesh.side[(i - beside) // _FANOUT]
        mesh.calls.setdefault(caller, []).append(svc)
    mesh.calls[f"{NS}/admin"] = mesh.side[beside::7] or mesh.side[:1]
    return mesh


def _pod(workload: str, pod_hash: str) -> Resource:
    return deployment(NS, workload.split("/", 1)[1], pod_hash, pod="p0001")


class _Writer:
    """Resources by workload (a fixed pod each) and the bad ledger's failures."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.pods = {w: _pod(w, f"{i:09x}") for i, w in enumerate(mesh.workloads)}

    def side_tree(self, t: Trace, parent: Span, caller: str, dur: float) -> None:
        """``caller``'s calls to its side services, and theirs, all answered."""
        for svc in self.mesh.calls.get(caller, []):
            span = t.call(parent, self.pods[svc], "GET /item", dur_ms=dur)
            self.side_tree(t, span, svc, max(1.0, dur - 1))

    def trace(self, t: Trace, i: int, ledger: str, *, fail: bool) -> None:
        """One user request: web or mobile down the chain, one tier also calling its side tree."""
        mesh = self.mesh
        entry = f"{NS}/mobile" if i % 3 == 2 else f"{NS}/web"
        chain = mesh.tiers[: mesh.depth - (2 if entry.endswith("mobile") else 1)][::-1]
        root = t.server(
            self.pods[entry],
            "GET /buy",
            method="GET",
            route="/buy",
            user=f"u{i % 29}",
            error=fail,
            dur_ms=400,
        )
        extra = [entry, *chain, mesh.origin][(i // 3) % (len(chain) + 2)]
        span, dur = root, 380.0
        for w in chain:
            span = t.call(span, self.pods[w], "POST /step", error=fail, dur_ms=dur)
            if w == extra:
                self.side_tree(t, span, w, 20)
            dur -= 12
        led = t.call(span, _ledger(ledger), "POST /entries", error=fail, dur_ms=dur - 12)
        if extra in (entry, mesh.origin):
            self.side_tree(t, root if extra == entry else led, extra, 20)
        if entry.endswith("web"):
            offers = t.call(root, self.pods[f"{NS}/offers"], "GET /offers", dur_ms=30, start_ms=300)
            t.call(offers, _ledger(ledger), "GET /balance", error=fail, dur_ms=5, start_ms=301)

    def admin(self, t: Trace) -> None:
        root = t.server(self.pods[f"{NS}/admin"], "GET /report", method="GET", route="/report")
        self.side_tree(t, root, f"{NS}/admin", 30)


def _ledger(pod_hash: str) -> Resource:
    return _pod(f"{NS}/ledger", pod_hash)


def fill(store: SqliteStore, mesh: Mesh, now_s: float) -> None:
    """Half an hour of traffic: the old ledger, then for 15 minutes the bad one."""
    writer = _Writer(mesh)
    buckets: dict[int, Aggregates] = {}
    for i in range(240):
        bad = i >= 120
        minutes_ago = (15 if bad else 30) - (i % 120) // 8
        t = Trace(base_s=minute(now_s, minutes_ago))
        writer.trace(t, i, BAD_LEDGER if bad else OLD_LEDGER, fail=bad and i % 4 == 0)
        add(buckets, t)
        if i % 6 == 0:
            admin = Trace(base_s=minute(now_s, minutes_ago))
            writer.admin(admin)
            add(buckets, admin)
    store.write(buckets)
