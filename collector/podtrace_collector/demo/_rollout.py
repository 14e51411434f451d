"""The demo's shop topology and the rolling update of a Deployment to a bad revision."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from podtrace_collector.demo._cluster import DRAIN_S, Cluster, Say
from podtrace_collector.demo._pods import Revision


@dataclass(frozen=True)
class DeploymentSpec:
    """One Deployment of the shop: its replicas, stable version and steady-state faults."""

    name: str
    replicas: int
    version: str
    faults: tuple[tuple[str, str], ...] = ()
    sidecar: bool = False

    def revision(self) -> Revision:
        """The revision running before the rollout."""
        return Revision(self.name, self.version, dict(self.faults))


# Start order matters only for readability of the log: backends first, the edge last.
SHOP = (
    DeploymentSpec("catalog", 1, "3.1.0"),
    # Flaky on purpose: the frontend's fallback absorbs these failures.
    DeploymentSpec("recommendation", 1, "1.2.0", (("SHOP_FAIL_RATE", "0.04"),)),
    DeploymentSpec("cart", 1, "1.4.0"),
    DeploymentSpec("payment", 2, "1.4.0", (("SHOP_FAIL_RATE", "0.004"),)),
    DeploymentSpec("shipping", 1, "0.9.2"),
    DeploymentSpec("checkout", 1, "1.8.0", sidecar=True),
    DeploymentSpec("frontend", 2, "2.3.1"),
)

FAILING = {"SHOP_FAIL_RATE": "0.5"}
"""What the failing revision does: fails half of its requests."""
SLOW = {"SHOP_EXTRA_LATENCY_MS": "80"}
"""What the slow revision does: spends 80 ms more in its own code on every request, and never
fails more than before."""


def bad_revision(spec: DeploymentSpec, faults: dict[str, str] | None = None) -> Revision:
    """The next version of *spec*, with a bug: new pod-template-hash, *faults* (default
    ``FAILING``) on top of the stable revision's own."""
    major, minor, _ = [*spec.version.split("."), "0", "0"][:3]
    bug = FAILING if faults is None else faults
    return Revision(spec.name, f"{major}.{int(minor) + 1}.0", dict(spec.faults) | bug)


async def rolling_update(
    cluster: Cluster,
    old: Revision,
    new: Revision,
    *,
    canary_s: float,
    say: Say,
    sidecar: bool = False,
) -> None:
    """Replace *old*'s pods by *new*'s one at a time (maxSurge 1, maxUnavailable 0).

    The first new pod is a canary: both revisions serve for *canary_s* before the rest rolls.
    New pods get a podtrace sidecar when *sidecar* is set, like the pods they replace.
    """
    workload = f"shop/{old.deployment}"
    say(
        f"rolling update {workload}: revision {old.hash} (v{old.version}) -> "
        f"{new.hash} (v{new.version}), maxSurge 1, maxUnavailable 0"
    )
    old_pods = [entry for entry in cluster.ready[old.deployment] if entry[0].revision == old]
    for index, (old_pod, old_process) in enumerate(old_pods):
        pod, process = cluster.start_pod(new, sidecar=sidecar)
        say(f"  creating pod {pod.name}")
        took = await cluster.wait_ready(pod, process)
        cluster.add_endpoint(pod, process)
        serving = len(cluster.pods(old.deployment))
        say(f"  {pod.name} ready in {took:.1f}s: {index + 1} of {serving} pods run {new.hash}")
        if index == 0 and canary_s > 0:
            say(f"  canary: both revisions take traffic for {canary_s:.0f}s")
            await asyncio.sleep(canary_s)
        cluster.remove_endpoint(old_pod)
        await asyncio.sleep(DRAIN_S)
        await asyncio.to_thread(cluster.stop_pod, old_pod, old_process)
        say(f"  terminated {old_pod.name} (drained first)")
    say(f"rollout of {workload} complete: every pod runs {new.hash}")
