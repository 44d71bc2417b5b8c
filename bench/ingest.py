"""Bulk ingest rate: `contactreports import` and `POST /api/events`, against the plain driver, on
SQLite and on PostgreSQL (`--backend`).

Writes N events (200,000 contacts, 200 campaigns, an id and details on every event) to an
NDJSON file, then, each into a fresh database:
- `contactreports import FILE` as its own process: the rate it prints covers storing; the
  whole command's rate adds start-up, reading and checking the file;
- `POST /api/events` in requests of 10,000 events from two concurrent clients, against a
  real API process (bodies are encoded before the clock starts);
- the baselines: the plain driver storing the same rows into a store made by the same
  migrations (the `events` table and its keys, its campaign index, `event_ids`), sorted by
  contact as the store does, in transactions of each path's size (the importer's and 10,000): the
  least work ingest needs on this layout, so the ratio is the cost of our Python. SQLite: plain
  sqlite3's executemany of INSERT; PostgreSQL: plain asyncpg's COPY (copy_records_to_table) of
  the events and of their ids.

    .venv/bin/python bench/ingest.py [--size tiny|small|full] [--backend both] [--events N]
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path

import asyncpg
import httpx
import msgspec

from common import PostgresServer, backends, new_store_url, postgres, size_parser, work_folder
from contactreports.catalogue import ACTION_CODES
from contactreports.cli.importer import BATCH as IMPORT_BATCH
from contactreports.models import Campaign, datetime_to_ms
from contactreports.store.accounts import create_account
from contactreports.store.campaigns import put_campaign
from contactreports.store.database import Database
from contactreports.store.events import EVENT_COLUMNS
from contactreports.store.sqlite import BULK_CACHE_KIB
from services import running

API_BATCH = 10_000
PLAIN = {"sqlite": "plain sqlite3 (executemany)", "postgresql": "plain asyncpg (COPY)"}
CAMPAIGNS = 200
ACTIONS = ("email.sent", "email.delivered", "email.opened", "email.clicked")


def write_events(path: Path, events: int) -> list[dict]:
    rng, first = random.Random(1), datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": f"e{n}",
            "email": f"c{rng.randrange(200_000)}@example.com",
            "action": rng.choice(ACTIONS),
            "occurred_at": (first + timedelta(milliseconds=rng.randrange(300 * 86_400_000))).isoformat(),
            "campaign_id": f"campaign-{rng.randrange(CAMPAIGNS)}",
            "details": {"url": "https://example.com/spring", "user_agent": "Mozilla/5.0"},
        }
        for n in range(events)
    ]
    path.write_bytes(b"\n".join(msgspec.json.encode(row) for row in rows) + b"\n")
    return rows


async def fresh_store(url: str) -> str:
    """A database with one account and its campaigns; returns the account's API key."""
    db = await Database.open(url)
    account, api_key = await create_account(db, "bench")
    for n in range(CAMPAIGNS):
        await put_campaign(db, account.id, Campaign(f"campaign-{n}", f"Campaign {n}", "email", None, False))
    await db.close()
    return api_key


def cli_import(url: str, file: Path) -> tuple[float, float]:
    """(events/s the importer reports, wall seconds of the whole command)."""
    asyncio.run(fresh_store(url))
    env = {**os.environ, "DATABASE_URL": url}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "contactreports", "import", str(file), "--account", "1"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    return float(re.search(r"([\d,]+) events/s", result.stdout)[1].replace(",", "")), wall


async def api_ingest(work: Path, url: str, rows: list[dict]) -> float:
    """Seconds to POST every row in requests of API_BATCH, two clients at a time."""
    api_key = await fresh_store(url)
    bodies = [msgspec.json.encode(rows[i : i + API_BATCH]) for i in range(0, len(rows), API_BATCH)]
    async with (
        running(work, url) as api,
        httpx.AsyncClient(
            base_url=api,
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            timeout=120,
        ) as http,
    ):
        started = time.perf_counter()

        async def client() -> None:
            while bodies:
                response = await http.post("/api/events", content=bodies.pop())
                assert response.status_code == 200, response.text

        await asyncio.gather(client(), client())
        return time.perf_counter() - started


def plain_batches(rows: list[dict], campaign_pks: dict[str, int], batch: int) -> list[tuple[list, list]]:
    """The rows of `events` and of `event_ids` the store would write, `batch` events to a
    transaction, each transaction's events sorted by contact as the store sorts them."""
    events = [
        (
            1,
            row["email"],
            datetime_to_ms(datetime.fromisoformat(row["occurred_at"])),
            seq,
            ACTION_CODES[row["action"]],
            campaign_pks[row["campaign_id"]],
            msgspec.json.encode(row["details"]).decode(),
        )
        for seq, row in enumerate(rows, 1)
    ]
    return [
        (sorted(events[i : i + batch], key=itemgetter(1)), sorted((1, row["id"]) for row in rows[i : i + batch]))
        for i in range(0, len(rows), batch)
    ]


def plain_sqlite_seconds(url: str, rows: list[dict], batch: int, cache_kib: int | None = None) -> float:
    """Plain sqlite3 storing the same events, `batch` to a transaction, into a store made by the
    same migrations, with the same pragmas: the least work ingest needs on this layout. Rows are
    built and sorted by contact before the clock starts; only the inserts and commits are timed."""
    asyncio.run(fresh_store(url))
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    if cache_kib:
        conn.execute(f"PRAGMA cache_size = -{cache_kib}")
    batches = plain_batches(rows, dict(conn.execute("SELECT id, pk FROM campaigns")), batch)
    insert = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
    started = time.perf_counter()
    for events_batch, ids_batch in batches:
        conn.execute("BEGIN")
        conn.executemany(insert, events_batch)
        conn.executemany("INSERT INTO event_ids (account_id, id) VALUES (?, ?)", ids_batch)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


async def plain_postgres_seconds(url: str, rows: list[dict], batch: int) -> float:
    """Plain asyncpg storing the same events with COPY, `batch` to a transaction, into a store made
    by the same migrations; as plain_sqlite_seconds, only the copies and commits are timed."""
    await fresh_store(url)
    conn = await asyncpg.connect(url)
    try:
        pks = {row["id"]: row["pk"] for row in await conn.fetch("SELECT id, pk FROM campaigns")}
        batches = plain_batches(rows, pks, batch)
        started = time.perf_counter()
        for events_batch, ids_batch in batches:
            async with conn.transaction():
                await conn.copy_records_to_table("events", records=events_batch, columns=EVENT_COLUMNS)
                await conn.copy_records_to_table("event_ids", records=ids_batch, columns=("account_id", "id"))
        return time.perf_counter() - started
    finally:
        await conn.close()


def plain_seconds(url: str, rows: list[dict], batch: int, cache_kib: int | None = None) -> float:
    if url.startswith("sqlite:"):
        return plain_sqlite_seconds(url, rows, batch, cache_kib)
    return asyncio.run(plain_postgres_seconds(url, rows, batch))


def main(events: int, choice: str) -> None:
    chosen = backends(choice)
    with work_folder("ingest") as work, postgres("postgresql" in chosen) as server:
        file = work / "events.ndjson"
        rows = write_events(file, events)
        for backend in chosen:
            measure(work, backend, server, file, rows)


def measure(work: Path, backend: str, server: PostgresServer | None, file: Path, rows: list[dict]) -> None:
    def url(name: str) -> str:
        return asyncio.run(new_store_url(backend, work, f"{backend}-{name}", server))

    events = len(rows)
    cli_rate, cli_wall = cli_import(url("cli"), file)
    api_seconds = asyncio.run(api_ingest(work, url("api"), rows))
    plain_import = events / plain_seconds(url("plain-import"), rows, IMPORT_BATCH, BULK_CACHE_KIB)
    plain_api = events / plain_seconds(url("plain-api"), rows, API_BATCH)
    whole = events / cli_wall
    plain = PLAIN[backend]
    print(f"{backend}: {events:,} events into an empty store:")
    print(
        f"  contactreports import  {cli_rate:10,.0f} events/s storing, {whole:,.0f}/s for the whole command; "
        f"{plain} in transactions of {IMPORT_BATCH:,}: {plain_import:,.0f}/s "
        f"({cli_rate / plain_import:.2f}x storing, {whole / plain_import:.2f}x whole; target >= 100,000/s)",
        flush=True,
    )
    print(
        f"  POST /api/events       {events / api_seconds:10,.0f} events/s; {plain} in transactions of "
        f"{API_BATCH:,}: {plain_api:,.0f}/s ({events / api_seconds / plain_api:.2f}x; target >= 30,000/s)",
        flush=True,
    )


EVENTS = {"tiny": 20_000, "small": 400_000, "full": 1_000_000}


if __name__ == "__main__":
    parser = size_parser(__doc__)
    parser.add_argument("--events", type=int, help="events to ingest (by size: 20k, 400k, 1M)")
    arguments = parser.parse_args()
    main(arguments.events or EVENTS[arguments.size], arguments.backend)
