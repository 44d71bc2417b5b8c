"""A storm: many concurrent clients doing random report operations on one account, spread over API processes.

Every call is recorded with when it started and ended (one monotonic clock), so tests can hold the
answers against each other (a 409 names a report that was active then; a deleted report stays
gone) and against the database and Redis afterwards.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

# The page size of `rows` calls: small, so that a report has a second page to follow.
ROWS_PAGE = 20


@dataclass(frozen=True)
class Call:
    op: str  # create, delete, rerun, get, list, rows, rows-next
    target: str | None  # the report acted on; None for create and list
    api: int  # which API process answered
    status: int
    body: Any  # the JSON body; None when empty
    content_type: str
    location: str | None
    started: float
    ended: float


@dataclass
class Storm:
    """Clients sharing what they have learnt: the report ids seen, and the latest one said to be active.

    Each client is a seeded random sequence of operations; the interleaving is up to the servers.
    """

    apis: list[str]
    headers: dict[str, str]
    searches: list[dict[str, Any]]
    weights: dict[str, int]
    seed: int
    # Reports there before the storm (done ones, to re-run); every report seen joins them.
    known: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    # Which search each report created in the storm was created with (an index into `searches`).
    search_of: dict[str, int] = field(default_factory=dict)
    active: str | None = None
    # The first report the storm creates is never deleted, so that some report survives it to be
    # checked (a storm's deletes could otherwise take every one).
    kept: str | None = None
    seeded: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.seeded = frozenset(self.known)

    async def run(self, clients: int, calls_per_client: int, seconds: float) -> list[Call]:
        """Run every client to its last call or the deadline, whichever comes first."""
        deadline = time.monotonic() + seconds
        async with AsyncExitStack() as stack:
            http = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, headers=self.headers, timeout=10))
                for url in self.apis
            ]
            await asyncio.gather(
                *(
                    self._client(random.Random(self.seed * 1000 + n), http, calls_per_client, deadline)
                    for n in range(clients)
                )
            )
        return self.calls

    async def _client(self, rng: random.Random, http: list[httpx.AsyncClient], calls: int, deadline: float) -> None:
        operations, weights = zip(*self.weights.items(), strict=True)
        for _ in range(calls):
            if time.monotonic() > deadline:
                return
            api = rng.randrange(len(http))
            operation = rng.choices(operations, weights)[0] if self.known else "create"
            await getattr(self, f"_{operation}")(rng, api, http[api])

    def _target(self, rng: random.Random, active_share: float = 0.5) -> str:
        # Often the report everyone is fighting over, else one there before the storm (to re-run),
        # else any report ever seen (deleted ones too).
        roll = rng.random()
        if self.active is not None and roll < active_share:
            return self.active
        if self.seeded and roll < (1 + active_share) / 2:
            return rng.choice(self.known[: len(self.seeded)])
        return rng.choice(self.known)

    async def _call(
        self, op: str, target: str | None, api: int, http: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> Call:
        started = time.monotonic()
        response = await http.request(method, url, **kwargs)
        call = Call(
            op=op,
            target=target,
            api=api,
            status=response.status_code,
            body=response.json() if response.content else None,
            content_type=response.headers.get("content-type", ""),
            location=response.headers.get("location"),
            started=started,
            ended=time.monotonic(),
        )
        self.calls.append(call)
        return call

    def _learn(self, call: Call) -> None:
        if call.status == 202:
            self.active = call.body["id"]
        elif call.status == 409 and "active_report_id" in call.body:
            self.active = call.body["active_report_id"]

    async def _create(self, rng: random.Random, api: int, http: httpx.AsyncClient) -> None:
        search = rng.randrange(len(self.searches))
        call = await self._call("create", None, api, http, "POST", "/api/reports", json=self.searches[search])
        if call.status == 202:
            self.known.append(call.body["id"])
            self.search_of[call.body["id"]] = search
            self.kept = self.kept or call.body["id"]
        self._learn(call)

    async def _delete(self, rng: random.Random, api: int, http: httpx.AsyncClient) -> None:
        # Mostly the active report: that frees the account, and the creates and reruns race for it.
        target = self._target(rng, active_share=0.8)
        if target == self.kept:
            return await self._get(rng, api, http)  # a call all the same: clients make as many
        call = await self._call("delete", target, api, http, "DELETE", f"/api/reports/{target}")
        if call.status == 204 and self.active == target:
            self.active = None

    async def _rerun(self, rng: random.Random, api: int, http: httpx.AsyncClient) -> None:
        target = self._target(rng)
        self._learn(await self._call("rerun", target, api, http, "POST", f"/api/reports/{target}/rerun"))

    async def _get(self, rng: random.Random, api: int, http: httpx.AsyncClient) -> None:
        target = self._target(rng)
        await self._call("get", target, api, http, "GET", f"/api/reports/{target}")

    async def _list(self, rng: random.Random, api: int, http: httpx.AsyncClient) -> None:
        await self._call("list", None, api, http, "GET", "/api/reports", params={"limit": 500})

    async def _rows(self, rng: random.Random, api: int, http: httpx.AsyncClient) -> None:
        """The first page of a report's rows and, when there is one, the next."""
        target = self._target(rng)
        url = f"/api/reports/{target}/rows"
        first = await self._call("rows", target, api, http, "GET", url, params={"limit": ROWS_PAGE})
        if first.status == 200 and first.body["next_cursor"] is not None:
            params = {"limit": ROWS_PAGE, "cursor": first.body["next_cursor"]}
            await self._call("rows-next", target, api, http, "GET", url, params=params)


def calls_on(calls: Iterable[Call], report_id: str) -> list[Call]:
    return [call for call in calls if call.target == report_id]
