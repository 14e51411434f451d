"""loadgen: the shop's users, an asynchronous load generator shopping through the frontend.

Sessions arrive at random (a Poisson process at ``sessions_per_s``), each as one user picked from
a population: look at the products, put one or two in the cart, and usually check out.  Every
request carries the user in ``x-user-id``, which the frontend records as ``enduser.id``.

``podtrace demo`` drives it in-process; in a cluster it runs as its own Deployment::

    python -m shop loadgen --rate 5 --users 300      # frontends from SHOP_FRONTEND_ADDR

It is the users' side, so it runs without ``podtrace run``: traces start at the frontend.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shop.runtime import Endpoints, NoEndpointsError

USER_HEADER = "x-user-id"
CHECKOUT_SHARE = 0.8
MAX_IN_FLIGHT = 24
TIMEOUT_S = 5.0


@dataclass
class Counters:
    """What the users saw so far."""

    requests: int = 0
    errors: int = 0
    checkouts: int = 0
    failed_checkouts: int = 0
    fallbacks: int = 0
    users: set[str] = field(default_factory=set)

    def line(self) -> str:
        """A one-line progress summary."""
        return (
            f"{self.requests} requests from {len(self.users)} users, {self.errors} errors; "
            f"checkouts {self.checkouts} ok / {self.failed_checkouts} failed; "
            f"recommendation fallbacks {self.fallbacks}"
        )


class LoadGenerator:
    """Drives shop traffic against whichever frontend pods are ready."""

    def __init__(
        self,
        frontends: Callable[[], list[str]],
        *,
        users: int,
        sessions_per_s: float,
        rng: random.Random,
    ) -> None:
        self.frontends = frontends
        self.users = [f"user-{i:04d}" for i in range(1, users + 1)]
        self.sessions_per_s = sessions_per_s
        self.rng = rng
        self.counters = Counters()
        self._turn = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Start sessions until *stop* is set, then let those in flight finish (briefly)."""
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT * 2)
        async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=limits) as client:
            sessions: set[asyncio.Task[None]] = set()
            while not stop.is_set():
                if len(sessions) < MAX_IN_FLIGHT:
                    task = asyncio.create_task(self._session(client))
                    sessions.add(task)
                    task.add_done_callback(sessions.discard)
                gap = self.rng.expovariate(self.sessions_per_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), gap)
            if sessions:
                _, pending = await asyncio.wait(sessions, timeout=TIMEOUT_S)
                for task in pending:
                    task.cancel()

    async def _session(self, client: httpx.AsyncClient) -> None:
        user = self.rng.choice(self.users)
        self.counters.users.add(user)
        _, page = await self._request(client, "GET", "/products", user)
        if page is None:
            return
        self.counters.fallbacks += bool(page.get("fallback"))
        products = [p["id"] for p in page.get("products", [])]
        for product in self.rng.sample(products, min(len(products), self.rng.choice((1, 1, 2)))):
            await self._think()
            body = {"product_id": product, "quantity": self.rng.choice((1, 1, 2))}
            _, added = await self._request(client, "POST", "/cart/items", user, json=body)
            if added is None:
                return
        if self.rng.random() < CHECKOUT_SHARE:
            await self._think()
            failed, order = await self._request(client, "POST", "/checkout", user)
            if failed:
                self.counters.failed_checkouts += 1
            elif order is not None:  # else a 4xx: the cart was emptied by a parallel session
                self.counters.checkouts += 1

    async def _request(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        user: str,
        json: dict[str, object] | None = None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """One request: whether it failed (5xx or no answer: counted) and the body if it worked."""
        frontends = self.frontends()
        if not frontends:
            return True, None
        self._turn += 1
        url = f"http://{frontends[self._turn % len(frontends)]}{path}"
        self.counters.requests += 1
        try:
            response = await client.request(method, url, headers={USER_HEADER: user}, json=json)
        except httpx.HTTPError:
            self.counters.errors += 1
            return True, None
        if response.status_code >= 500:
            self.counters.errors += 1
            return True, None
        if response.status_code >= 400:
            return False, None
        body = response.json()
        return False, body if isinstance(body, dict) else {"items": body}

    async def _think(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.02, 0.08))


async def _serve(users: LoadGenerator, every_s: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    traffic = asyncio.create_task(users.run(stop))
    while not traffic.done():
        await asyncio.wait([traffic], timeout=every_s)
        print(users.counters.line(), flush=True)
    traffic.result()


def main(argv: list[str] | None = None) -> int:
    """Drive traffic at the frontend Service until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m shop loadgen", description=__doc__)
    parser.add_argument("--rate", type=float, default=5.0, help="sessions a second")
    parser.add_argument("--users", type=int, default=300, help="distinct users")
    parser.add_argument("--report-every", type=float, default=30.0, help="seconds")
    args = parser.parse_args(argv)
    frontend = Endpoints("frontend")

    def frontends() -> list[str]:
        try:
            return [frontend.pick()]
        except NoEndpointsError:
            return []

    users = LoadGenerator(
        frontends, users=args.users, sessions_per_s=args.rate, rng=random.Random()
    )
    asyncio.run(_serve(users, args.report_every))
    return 0
