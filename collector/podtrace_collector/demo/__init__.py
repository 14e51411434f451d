"""``podtrace demo``: the whole product end to end on one machine, in about two minutes.

Starts a gateway collector (SQLite in a work directory), the example shop (``examples/shop``) as
simulated pods, one of them behind a sidecar collector, drives traffic from many users, rolls one
Deployment to a bad revision, then prints that rollout's blast radius and keeps the page and the
API up until Ctrl-C (``--exit-after-report``: stops at once), when it stops everything.

Modules: ``_procs`` (process groups, readiness), ``_pods`` (pod names and files), ``_cluster``
(pods, Services, the shop's load generator), ``_setup`` (gateway, ports, prerequisites),
``_rollout`` (topology and rolling update), ``_report`` (waiting for the analysis), ``_main``
(the command).
"""

from __future__ import annotations

from podtrace_collector.demo._main import main

__all__ = ["main"]
