"""Report job time vs plain sqlite3 reading the same rows and inserting them into a table.

Builds (once, cached in bench/.cache/) a store of N events through the store layer: 200,000
contacts and one target contact with 5,000 matching events. Then, best of 5 each:
- the report job for the target contact, without and with archived campaigns;
- plain sqlite3 reading the same rows and inserting them into a table in one transaction,
  the least work a report needs (DESIGN.md's baseline).

    .venv/bin/python bench/job_vs_sqlite.py [--events 1000000]
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path

from common import size_parser
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.models import NewEvent, ReportSpec
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.events import insert_events
from contactreports.store.reports import create_report, delete_report

CACHE = Path(__file__).parent / ".cache"
TARGET, MATCHING = "target@example.com", 5_000
START = 1_767_225_600_000  # 2026-01-01
END = START + 400 * 86_400_000
ACTIONS = ("email.clicked", "email.delivered", "email.opened", "email.sent")  # codes 1 to 4
RUNS = 5


async def build(url: str, events: int) -> None:
    db = await Database.open(url)
    account, _ = await create_account(db, "bench")
    rng, batch = random.Random(1), []
    started = time.perf_counter()
    for n in range(events):
        email = TARGET if n % (events // MATCHING) == 0 else f"c{rng.randrange(200_000)}@example.com"
        moment = START + rng.randrange(300 * 86_400_000)
        batch.append(NewEvent(None, email, rng.choice((1, 2, 3, 4)), moment, None, b'{"url":"https://x.example/a"}'))
        if len(batch) == 10_000:
            await _insert(db, account.id, batch)
            batch = []
    await _insert(db, account.id, batch)
    print(f"built {events:,} events through the store in {time.perf_counter() - started:.0f} s")
    await db.close()


async def _insert(db: Database, account_id: int, batch: list[NewEvent]) -> None:
    if batch:
        await insert_events(db, account_id, batch)


async def job_seconds(url: str, include_archived: bool) -> tuple[float, int]:
    db = await Database.open(url)
    spec = ReportSpec(TARGET, ACTIONS, START, END, include_archived)
    best, rows = float("inf"), 0
    try:
        for _ in range(RUNS):
            report = await create_report(db, 1, spec)
            started = time.perf_counter()
            result = await generate_report(job_context(Settings(database_url=url), db), report.id, 1)
            best = min(best, time.perf_counter() - started)
            rows = int(result.split()[1])
            await delete_report(db, 1, report.id)
    finally:
        await db.close()  # an open aiosqlite connection's thread would keep the process alive
    return best, rows


def plain_sqlite_seconds(path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TEMP TABLE copy (occurred_at, seq, action, campaign_pk, details)")
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT occurred_at, seq, action, campaign_pk, details FROM events WHERE account_id = 1 AND email = ?"
            " AND occurred_at >= ? AND occurred_at < ? AND action IN (1, 2, 3, 4) ORDER BY occurred_at, seq",
            (TARGET, START, END),
        ).fetchall()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO copy VALUES (?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        best = min(best, time.perf_counter() - started)
        conn.execute("DELETE FROM copy")
    conn.close()
    return best


async def main(events: int, cache: Path) -> None:
    path = cache / f"store-{events}.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        await build(url, events)
    hot, rows = await job_seconds(url, include_archived=False)
    archived, _ = await job_seconds(url, include_archived=True)
    baseline = plain_sqlite_seconds(path)
    print(f"{events:,} events, {rows:,} matching rows, best of {RUNS}:")
    print(f"  plain sqlite3 read + insert      {baseline * 1000:7.1f} ms")
    print(f"  report job                       {hot * 1000:7.1f} ms  ({hot / baseline:.2f}x plain sqlite3)")
    print(f"  report job with archived         {archived * 1000:7.1f} ms  ({archived / hot:.2f}x the job without)")


EVENTS = {"tiny": 20_000, "small": 1_000_000, "full": 10_000_000}


if __name__ == "__main__":
    parser = size_parser(__doc__)
    parser.add_argument("--events", type=int, help="events in the store (by size: 20k, 1M, 10M)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where built stores are kept")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events or EVENTS[arguments.size], arguments.cache))
