"""Submit -> done latency over HTTP for the demo contact, with an idle worker.

Starts its own Redis, API and worker on a fresh demo database, then creates (and deletes)
the same report N times, polling every 5 ms. Also reports the job's own time
(finished_at - started_at) against the plain driver reading the same rows and inserting them
into a table in one transaction, the least work a report needs: plain sqlite3 through Python
(executemany) on SQLite, plain asyncpg's one INSERT ... SELECT on PostgreSQL (`--backend`; a
private server, bench/common.py).

    .venv/bin/python bench/submit_to_done.py [--size tiny|small|full] [--backend both] [--runs N]
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from common import PostgresServer, backends, new_store_url, postgres, size_parser, work_folder
from contactreports.cli.demo import DEMO_API_KEY, DEMO_CONTACT, demo_search, seed_demo
from contactreports.store.database import Database
from services import running

RUNS = {"tiny": 3, "small": 50, "full": 200}
TARGET_P50_MS = 100

SEARCH = demo_search(datetime.now(UTC))  # the README tour's: every demo event, seeded just after


def ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


MATCHING = (
    "SELECT occurred_at, seq, action, campaign_pk, details FROM events WHERE account_id = 1 AND email = {}"
    " AND occurred_at >= {} AND occurred_at < {} AND action BETWEEN 1 AND 25 ORDER BY occurred_at, seq"
)
PLAIN = {"sqlite": "plain sqlite3", "postgresql": "plain asyncpg"}


def plain_sqlite_copy(path: str) -> float:
    """Seconds for sqlite3 to read the report's rows and insert them into a table in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TEMP TABLE copy (occurred_at, seq, action, campaign_pk, details)")
    started = time.perf_counter()
    rows = conn.execute(
        MATCHING.format("?", "?", "?"), (DEMO_CONTACT, ms(SEARCH["start"]), ms(SEARCH["end"]))
    ).fetchall()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO copy VALUES (?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    return time.perf_counter() - started


async def plain_postgres_copy(url: str) -> float:
    """Seconds for asyncpg to copy the report's rows into a table in one transaction (one
    INSERT ... SELECT: the rows never leave the server)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "CREATE TEMP TABLE copy (occurred_at BIGINT, seq BIGINT, action BIGINT, campaign_pk BIGINT, details TEXT)"
        )
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                f"INSERT INTO copy {MATCHING.format('$1', '$2', '$3')}",
                DEMO_CONTACT,
                int(ms(SEARCH["start"])),
                int(ms(SEARCH["end"])),
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def plain_copy(url: str) -> float:
    if url.startswith("sqlite:"):
        return plain_sqlite_copy(url.removeprefix("sqlite:///"))
    return await plain_postgres_copy(url)


async def main(runs: int, choice: str) -> None:
    chosen = backends(choice)
    with postgres("postgresql" in chosen) as server:
        for backend in chosen:
            with work_folder(f"submit-{backend}") as work:
                await measure(backend, server, runs, work)


async def measure(backend: str, server: PostgresServer | None, runs: int, work: Path) -> None:
    database_url = await new_store_url(backend, work, "bench", server)
    db = await Database.open(database_url)
    await seed_demo(db)
    await db.close()
    latencies, job_times = [], []
    async with (
        running(work, database_url, ["worker"]) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {DEMO_API_KEY}"}) as http,
    ):
        await asyncio.sleep(1)  # let the worker settle into its idle poll loop
        for _ in range(runs):
            started = time.perf_counter()
            report = (await http.post("/api/reports", json=SEARCH)).json()
            while (report := (await http.get(f"/api/reports/{report['id']}")).json())["status"] != "done":
                await asyncio.sleep(0.005)
            latencies.append((time.perf_counter() - started) * 1000)
            job_times.append(ms(report["finished_at"]) - ms(report["started_at"]))
            await http.delete(f"/api/reports/{report['id']}")
            await asyncio.sleep(0.2)  # an idle worker, as a user would find it
    rows = report["row_count"]
    baseline = min([await plain_copy(database_url) for _ in range(20)]) * 1000
    latencies.sort()
    p50, job_p50 = statistics.median(latencies), statistics.median(job_times)
    print(
        f"{backend}: submit -> done over HTTP, {runs} runs, {rows} rows: p50 {p50:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms; target p50 < {TARGET_P50_MS} ms: "
        f"{'met' if p50 < TARGET_P50_MS else 'MISSED'}"
    )
    # The job's timestamps have millisecond resolution, so the ratio is coarse for a small report.
    print(
        f"job time (started -> finished) p50 {job_p50:.1f} ms; {PLAIN[backend]} read + insert of the same rows "
        f"{baseline:.2f} ms; the rest of the p50 is queue, HTTP and polling: {p50 - job_p50:.1f} ms"
    )


if __name__ == "__main__":
    arguments_parser = size_parser(__doc__)
    arguments_parser.add_argument("--runs", type=int, help="reports to time (by size: 3, 50, 200)")
    arguments = arguments_parser.parse_args()
    asyncio.run(main(arguments.runs or RUNS[arguments.size], arguments.backend))
