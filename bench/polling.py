"""Status polling: `GET /api/reports/{id}` from 50 concurrent keep-alive clients.

Builds a done report through the store layer, starts its own Redis and API, then drives the
endpoint (with the API key, as clients do) from a separate load process (bench/http_load.py)
for a fixed time. Every answer must be 200 with the report's body.

The baseline, measured in the same run by the same load process, is the floor of the server
and the tool: a minimal Litestar app answering a fixed body of the same size, served the way
`contactreports serve` serves the API (server.py). The ratio is what the endpoint's own work
(API key, report lookup, encoding) costs. The CPU each side used per request shows whether
the load tool could be the bottleneck (server and tool share the machine's cores).

`--compare-uvicorn` adds the same API served by uvicorn with httptools and uvloop, as it was
served before Granian (issue 12), to every round: what the server change costs or gains.

`--backend both` (the default) does all this on a SQLite store, then on a PostgreSQL one (a
private server, bench/common.py); the server CPU counted is the API's processes', not PostgreSQL's.

    .venv/bin/python bench/polling.py [--size tiny|small|full] [--workers 2] [--seconds S] [--rounds N]
                                      [--compare-uvicorn]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec
import psutil
from litestar import Litestar, MediaType, get

from common import PostgresServer, backends, new_store_url, postgres, size_parser, work_folder
from contactreports.cli.embedded_redis import free_port
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.models import NewEvent, ReportSpec
from contactreports.server import APP_FACTORY
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.events import insert_events
from contactreports.store.reports import create_report
from services import service_env, wait_healthy

BENCH = Path(__file__).parent
# Rounds of (API, floor), each a timed load of so many seconds after a warmup: alternating
# spreads the machine's other load over both alike.
ROUNDS = {"tiny": 1, "small": 2, "full": 3}
SECONDS = {"tiny": 2.0, "small": 6.0, "full": 20.0}
WARMUP = {"tiny": 0.5, "small": 1.0, "full": 2.0}
CONTACT = "poll@example.com"
START = 1_767_225_600_000  # 2026-01-01
ACTIONS = ("email.clicked", "email.delivered", "email.opened", "email.sent")  # codes 1 to 4
TARGET_RATE, TARGET_P99_MS = 2_000, 50
API, FLOOR, UVICORN = "GET /api/reports/{id}", "floor (minimal Litestar app)", "the same under uvicorn"


async def build_store(database_url: str) -> tuple[str, str]:
    """An account with one done report (20 rows) among 100 events; its API key and the report's id."""
    db = await Database.open(database_url)
    try:
        account, api_key = await create_account(db, "polling")
        emails = [CONTACT if n % 5 == 0 else f"c{n}@example.com" for n in range(100)]
        events = [NewEvent(None, email, 1 + n % 4, START + n * 60_000, None, None) for n, email in enumerate(emails)]
        await insert_events(db, account.id, events)
        report = await create_report(db, account.id, ReportSpec(CONTACT, ACTIONS, START, START + 86_400_000, False))
        await generate_report(job_context(Settings(database_url=database_url), db), account.id, report.id, 1)
    finally:
        await db.close()
    return api_key, report.id


class Load(msgspec.Struct):
    """What bench/http_load.py measured after its warmup (summed over rounds)."""

    requests: int
    errors: int
    first_error: str | None
    latencies_ms: list[float]
    load_cpu_seconds: float
    server_cpu_seconds: float

    def __add__(self, other: Load) -> Load:
        return Load(
            self.requests + other.requests,
            self.errors + other.errors,
            self.first_error or other.first_error,
            sorted(self.latencies_ms + other.latencies_ms),
            self.load_cpu_seconds + other.load_cpu_seconds,
            self.server_cpu_seconds + other.server_cpu_seconds,
        )

    def percentile(self, fraction: float) -> float:
        return self.latencies_ms[min(len(self.latencies_ms) - 1, int(len(self.latencies_ms) * fraction))]

    def cpu_us(self, seconds: float) -> str:
        """CPU microseconds per request."""
        return f"{seconds / self.requests * 1e6:,.0f}"


class Target(msgspec.Struct, frozen=True):
    """One server under test: what to GET, with which headers, and the pids that serve it."""

    url: str
    headers: dict[str, str]
    pids: list[int]


def load(target: Target, expect: Path, arguments: argparse.Namespace) -> Load:
    """Drive `target` from the load process for one round."""
    result = expect.with_name("load.json")
    result.unlink(missing_ok=True)
    command = [sys.executable, str(BENCH / "http_load.py"), target.url, f"--expect={expect}", f"--out={result}"]
    command += [f"--clients={arguments.clients}", f"--warmup={arguments.warmup}", f"--seconds={arguments.seconds}"]
    command += [f"--header={name}: {value}" for name, value in target.headers.items()]
    command += [f"--watch={pid}" for pid in target.pids]
    subprocess.run(command, check=True)
    return msgspec.json.decode(result.read_bytes(), type=Load)


def with_children(pid: int) -> list[int]:
    """A server process and its workers (the server runs them as its children)."""
    return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]


@asynccontextmanager
async def served(command: list[str], env: dict[str, str], health: str) -> AsyncIterator[tuple[str, list[int]]]:
    """Run a server `command` (with `{port}` in it) until healthy at `health`; its URL and pids."""
    port = free_port()
    process = subprocess.Popen([part.format(port=port) for part in command], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, health)
        yield url, with_children(process.pid)
    finally:
        process.terminate()
        process.wait()


@asynccontextmanager
async def floor_server(body: Path, workers: int) -> AsyncIterator[Target]:
    """The minimal app below, served as `contactreports serve` serves the API (server.serve_api)."""
    serve = "from contactreports.server import serve_api; from contactreports.config import Settings; "
    serve += f"serve_api(Settings(), '127.0.0.1', {{port}}, {workers}, app='polling:floor_app')"
    env = {**os.environ, "FLOOR_BODY_FILE": str(body), "PYTHONPATH": str(BENCH)}
    async with served([sys.executable, "-c", serve], env, "/floor") as (url, pids):
        yield Target(f"{url}/floor", {}, pids)


def floor_app() -> Litestar:
    """The baseline: no key, no lookup; a fixed body (the report's, from FLOOR_BODY_FILE)."""
    body = Path(os.environ["FLOOR_BODY_FILE"]).read_bytes()

    @get("/floor", media_type=MediaType.JSON)
    async def floor() -> bytes:
        return body

    return Litestar(route_handlers=[floor])


@asynccontextmanager
async def api_server(work: Path, body: Path, database_url: str) -> AsyncIterator[tuple[Target, dict[str, str]]]:
    """`contactreports serve` on a store with a done report; its body is written to `body`.
    Also yields the environment it runs in (its Redis, its database)."""
    api_key, report_id = await build_store(database_url)
    auth = {"Authorization": f"Bearer {api_key}"}
    with service_env(work, database_url) as env:
        async with served([sys.executable, "-m", "contactreports", "serve", "--port={port}"], env, "/health") as (
            url,
            pids,
        ):
            async with httpx.AsyncClient(headers=auth) as http:
                body.write_bytes((await http.get(f"{url}/api/reports/{report_id}")).content)
            yield Target(f"{url}/api/reports/{report_id}", auth, pids), env


@asynccontextmanager
async def uvicorn_api_server(api: Target, env: dict[str, str], workers: int) -> AsyncIterator[Target]:
    """The same API, store and Redis, served by uvicorn (httptools, uvloop) as before Granian."""
    command = [sys.executable, "-m", "uvicorn", "--factory", APP_FACTORY, "--port={port}", f"--workers={workers}"]
    command += ["--http=httptools", "--loop=uvloop", "--log-level=warning"]
    async with served(command, env, "/health") as (url, pids):
        yield Target(url + urlsplit(api.url).path, api.headers, pids)


async def measure(
    arguments: argparse.Namespace, backend: str, server: PostgresServer | None, work: Path
) -> dict[str, Load]:
    """Rounds of load on each server in turn, all of them running throughout."""
    body = work / "report.json"
    os.environ["WEB_CONCURRENCY"] = str(arguments.workers)  # `serve`'s processes
    database_url = await new_store_url(backend, work, "bench", server)
    async with AsyncExitStack() as servers:
        api, env = await servers.enter_async_context(api_server(work, body, database_url))
        targets = {API: api, FLOOR: await servers.enter_async_context(floor_server(body, arguments.workers))}
        if arguments.compare_uvicorn:
            targets[UVICORN] = await servers.enter_async_context(uvicorn_api_server(api, env, arguments.workers))
        rounds = [
            {name: load(target, body, arguments) for name, target in targets.items()} for _ in range(arguments.rounds)
        ]
    return {name: sum((r[name] for r in rounds[1:]), rounds[0][name]) for name in targets}


def report(name: str, result: Load, seconds: float) -> float:
    rate = result.requests / seconds
    print(
        f"{name:<30} {rate:>7,.0f} req/s  p50 {result.percentile(0.5):5.1f} ms  p99 {result.percentile(0.99):5.1f} ms"
        f"  errors {result.errors}  CPU per request: server {result.cpu_us(result.server_cpu_seconds)} us, "
        f"load tool {result.cpu_us(result.load_cpu_seconds)} us"
    )
    if result.errors:
        raise SystemExit(f"{result.errors} errors, the first: {result.first_error}")
    return rate


def main(arguments: argparse.Namespace) -> None:
    chosen = backends(arguments.backend)
    with postgres("postgresql" in chosen) as server:
        for backend in chosen:
            with work_folder(f"polling-{backend}") as work:
                summarise(arguments, backend, asyncio.run(measure(arguments, backend, server, work)))


def summarise(arguments: argparse.Namespace, backend: str, results: dict[str, Load]) -> None:
    seconds = arguments.seconds * arguments.rounds
    print(
        f"{backend}: {arguments.clients} keep-alive clients, {arguments.workers} server process(es), "
        f"{arguments.rounds} x {arguments.seconds:g} s on each server, alternating:"
    )
    rates = {name: report(name, result, seconds) for name, result in results.items()}
    api = results[API]
    p99 = api.percentile(0.99)
    met = rates[API] >= TARGET_RATE and p99 < TARGET_P99_MS
    print(
        f"{backend} polling: {rates[API]:,.0f} req/s, p99 {p99:.1f} ms "
        f"({rates[API] / rates[FLOOR]:.2f}x the floor's rate); "
        f"target >= {TARGET_RATE:,} req/s and p99 < {TARGET_P99_MS} ms: {'met' if met else 'NOT met'}"
    )
    if UVICORN in results:
        before = results[UVICORN]
        print(
            f"Granian against uvicorn: {rates[API] / rates[UVICORN]:.2f}x the rate, p99 {p99:.1f} against "
            f"{before.percentile(0.99):.1f} ms, server CPU per request {api.cpu_us(api.server_cpu_seconds)} against "
            f"{before.cpu_us(before.server_cpu_seconds)} us"
        )
    # The load tool is one process: past this rate it, not the server, would be the bottleneck.
    print(f"load tool ceiling: {api.requests / api.load_cpu_seconds:,.0f} req/s on a core of its own")
    # Well under 2 busy cores in all, with no server process at 1: the machine's other load had the rest.
    print(
        f"cores busy during the API's load: server {api.server_cpu_seconds / seconds:.2f} "
        f"({arguments.workers} process(es)), load tool {api.load_cpu_seconds / seconds:.2f}"
    )


if __name__ == "__main__":
    parser = size_parser(__doc__)
    parser.add_argument("--seconds", type=float, help="timed load per round and server (by size: 2, 6, 20)")
    parser.add_argument("--rounds", type=int, help="rounds of (API, floor) (by size: 1, 2, 3)")
    parser.add_argument("--clients", type=int, default=50)
    # Two, as on the 2 cores the target names: one process uses at most one core.
    parser.add_argument("--workers", type=int, default=2, help="server processes (contactreports serve --workers)")
    parser.add_argument("--compare-uvicorn", action="store_true", help="also the API under uvicorn, each round")
    arguments = parser.parse_args()
    arguments.warmup = WARMUP[arguments.size]
    arguments.seconds = arguments.seconds or SECONDS[arguments.size]
    arguments.rounds = arguments.rounds or ROUNDS[arguments.size]
    main(arguments)
