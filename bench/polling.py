"""Status polling: `GET /api/reports/{id}` from 50 concurrent keep-alive clients.

Builds a done report through the store layer, starts its own Redis and API, then drives the
endpoint (with the API key, as clients do) from a separate load process (bench/http_load.py)
for a fixed time. Every answer must be 200 with the report's body.

The baseline, measured in the same run by the same load process, is the floor of the server
and the tool: a minimal Litestar app answering a fixed body of the same size, served by
uvicorn the way `contactreports serve` serves the API. The ratio is what the endpoint's own
work (API key, report lookup, encoding) costs. The CPU each side used per request shows
whether the load tool could be the bottleneck (server and tool share the machine's cores).

    .venv/bin/python bench/polling.py [--size tiny|small|full] [--workers 2] [--seconds S] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import msgspec
import psutil
from litestar import Litestar, MediaType, get

from common import size_parser
from contactreports.config import Settings
from contactreports.embedded_redis import free_port
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.models import NewEvent, ReportSpec
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.events import insert_events
from contactreports.store.reports import create_report
from services import running, wait_healthy

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


async def build_store(database_url: str) -> tuple[str, str]:
    """An account with one done report (20 rows) among 100 events; its API key and the report's id."""
    db = await Database.open(database_url)
    try:
        account, api_key = await create_account(db, "polling")
        emails = [CONTACT if n % 5 == 0 else f"c{n}@example.com" for n in range(100)]
        events = [NewEvent(None, email, 1 + n % 4, START + n * 60_000, None, None) for n, email in enumerate(emails)]
        await insert_events(db, account.id, events)
        report = await create_report(db, account.id, ReportSpec(CONTACT, ACTIONS, START, START + 86_400_000, False))
        await generate_report(job_context(Settings(database_url=database_url), db), report.id, 1)
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
    """A server process and its workers (uvicorn --workers runs them as its children)."""
    return [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]


@asynccontextmanager
async def floor_server(body: Path, workers: int) -> AsyncIterator[Target]:
    """The minimal app below, served by uvicorn as `contactreports serve` serves the API."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "polling:floor_app", f"--app-dir={BENCH}"]
    command += [f"--port={port}", f"--workers={workers}", "--log-level=warning"]
    process = subprocess.Popen(command, env={**os.environ, "FLOOR_BODY_FILE": str(body)})
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url, "/floor")
        yield Target(f"{url}/floor", {}, with_children(process.pid))
    finally:
        process.terminate()
        process.wait()


def floor_app() -> Litestar:
    """The baseline: no key, no lookup; a fixed body (the report's, from FLOOR_BODY_FILE)."""
    body = Path(os.environ["FLOOR_BODY_FILE"]).read_bytes()

    @get("/floor", media_type=MediaType.JSON)
    async def floor() -> bytes:
        return body

    return Litestar(route_handlers=[floor])


@asynccontextmanager
async def api_server(work: Path, body: Path) -> AsyncIterator[Target]:
    """`contactreports serve` on a store with a done report; its body is written to `body`."""
    database_url = f"sqlite:///{work / 'bench.db'}"
    api_key, report_id = await build_store(database_url)
    auth = {"Authorization": f"Bearer {api_key}"}
    async with running(work, database_url) as url:
        async with httpx.AsyncClient(headers=auth) as http:
            body.write_bytes((await http.get(f"{url}/api/reports/{report_id}")).content)
        serve = next(p for p in psutil.Process().children() if "serve" in p.cmdline())
        yield Target(f"{url}/api/reports/{report_id}", auth, with_children(serve.pid))


async def measure(arguments: argparse.Namespace) -> tuple[Load, Load]:
    """Rounds of load on the API, then on the floor, both servers running throughout."""
    work = Path(tempfile.mkdtemp(prefix="contactreports-bench-"))
    body = work / "report.json"
    os.environ["WEB_CONCURRENCY"] = str(arguments.workers)  # `serve`'s processes
    async with api_server(work, body) as api:
        async with floor_server(body, arguments.workers) as floor:
            results = [(load(api, body, arguments), load(floor, body, arguments)) for _ in range(arguments.rounds)]
    return sum((r[0] for r in results[1:]), results[0][0]), sum((r[1] for r in results[1:]), results[0][1])


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
    api, floor = asyncio.run(measure(arguments))
    seconds = arguments.seconds * arguments.rounds
    print(
        f"{arguments.clients} keep-alive clients, {arguments.workers} server process(es), {arguments.rounds} x "
        f"{arguments.seconds:g} s on each server, alternating:"
    )
    api_rate = report("GET /api/reports/{id}", api, seconds)
    floor_rate = report("floor (minimal Litestar app)", floor, seconds)
    p99 = api.percentile(0.99)
    met = api_rate >= TARGET_RATE and p99 < TARGET_P99_MS
    print(
        f"polling: {api_rate:,.0f} req/s, p99 {p99:.1f} ms ({api_rate / floor_rate:.2f}x the floor's rate); "
        f"target >= {TARGET_RATE:,} req/s and p99 < {TARGET_P99_MS} ms: {'met' if met else 'NOT met'}"
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
    arguments = parser.parse_args()
    arguments.warmup = WARMUP[arguments.size]
    arguments.seconds = arguments.seconds or SECONDS[arguments.size]
    arguments.rounds = arguments.rounds or ROUNDS[arguments.size]
    main(arguments)
