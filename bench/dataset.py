"""A realistic store of N events, written through the store layer and cached in bench/.cache/.

One account; 200,000 contacts; 2,000 campaigns (email, SMS, automation) sent over a year, a
fifth of them archived (their events are in `archived_events`). Events per contact are
heavy-tailed (Pareto): at 10M events the median contact has 26, the 99th percentile 350,
425 contacts have over 1,000 and the busiest (a seed address) 190,000. Each event follows a
campaign it belongs to (action by the campaign's channel, time shortly after its sending) or
is a profile/form event of no campaign, with details like a real sender's (subjects, links,
user agents, bounce reasons).

Three target contacts have exactly 50, 5,000 and 50,000 events matching SEARCH (every email
action from 2026-01-01 to 2026-12-01) outside archived campaigns, a quarter as many again on
archived ones, and some that do not match (other channels, before the window). Their events
are the same at every store size, so stores of different sizes compare the same contact.

    .venv/bin/python bench/dataset.py --events 1000000      # build (or find) a store, say where

On PostgreSQL (`on_postgres`), a store is the cached SQLite store's copy: the account and the
campaigns made through the store layer, in the same order (so with the same keys), and the
events of both tables copied with COPY, then VACUUM ANALYZE, as a store that has settled would be.

Events are inserted contact by contact in key order (account, email, occurred_at), so the
clustered inserts are appends. `--order arrival` inserts them by time instead, as a live store
grows. Measured at 1M events (2026-11-23, loaded machine): arrival order took 104 s to build
against 29 s, its `events` pages are 71% full against 89% (31,111 pages against 24,813), and
yet the report job reads it at most 7% slower (5,000 rows: 14.6 ms against 13.6 ms) and the
ratios to plain sqlite3 move by 0.06x at most, so the benchmarks use key order.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import msgspec
import numpy as np

from common import PostgresServer
from contactreports.catalogue import ACTION_CODES
from contactreports.models import Campaign, NewEvent, ReportSpec
from contactreports.store.accounts import create_account
from contactreports.store.campaigns import put_campaign
from contactreports.store.database import Database
from contactreports.store.events import EVENT_COLUMNS, insert_events

# Bump whenever what is generated changes: a cached store of another version is never reused.
VERSION = 1
CACHE = Path(__file__).parent / ".cache"
SEED = 20261123
CONTACTS, CAMPAIGNS = 200_000, 2_000
DAY = 86_400_000
YEAR_START = 1_764_547_200_000  # 2025-12-01: events span a year from here
YEAR_END = YEAR_START + 365 * DAY
SEARCH = ReportSpec(
    email="",
    actions=tuple(name for name in ACTION_CODES if name.startswith("email.")),
    start=1_767_225_600_000,  # 2026-01-01
    end=1_796_083_200_000,  # 2026-12-01
    include_archived=False,
)
MATCHING = (50, 5_000, 50_000)
# Per target, besides its MATCHING events: on archived campaigns, a quarter as many again;
# not matching (an SMS or automation action, or before the window), a tenth each.
ARCHIVED_SHARE, OTHER_SHARE = 4, 10
BATCH = 50_000  # events per insert_events call (one transaction each)

CHANNELS = ("email", "sms", "automation")
CHANNEL_SHARE = (0.7, 0.15, 0.15)
# Actions by channel with their shares: a funnel (sent > delivered > opened > clicked ...).
ACTION_SHARES = {
    "email": {
        "email.sent": 0.34,
        "email.delivered": 0.32,
        "email.opened": 0.19,
        "email.clicked": 0.08,
        "email.bounced": 0.03,
        "email.unsubscribed": 0.02,
        "email.spam_reported": 0.01,
        "email.forwarded": 0.01,
    },
    "sms": {"sms.sent": 0.45, "sms.delivered": 0.42, "sms.clicked": 0.08, "sms.failed": 0.04, "sms.opted_out": 0.01},
    "automation": {
        "automation.entered": 0.25,
        "automation.step_completed": 0.45,
        "automation.filtered": 0.08,
        "automation.stopped": 0.04,
        "automation.expired": 0.04,
        "automation.cancelled": 0.03,
        "automation.failed": 0.02,
        "automation.completed": 0.09,
    },
    None: {  # no campaign: the contact's own doings
        "campaign.profile_updated": 0.4,
        "campaign.form_submitted": 0.3,
        "campaign.subscribed": 0.15,
        "campaign.optin_requested": 0.1,
        "campaign.optin_confirmed": 0.05,
    },
}
NO_CAMPAIGN_SHARE = 0.08
DETAIL_VARIANTS = 64


class Target(msgspec.Struct, frozen=True):
    email: str
    matching: int  # events SEARCH finds without archived campaigns
    matching_archived: int  # ... and with them


class Store(msgspec.Struct, frozen=True):
    path: Path  # the SQLite store, or the one a PostgreSQL store is a copy of
    events: int
    targets: tuple[Target, ...]
    postgres_url: str | None = None

    @property
    def backend(self) -> str:
        return "sqlite" if self.postgres_url is None else "postgresql"

    @property
    def url(self) -> str:
        return self.postgres_url or f"sqlite:///{self.path}"


class _Plan(msgspec.Struct, frozen=True):
    """Every event of a store as columns (numpy arrays), in no particular order."""

    contact: np.ndarray
    campaign: np.ndarray  # index into the campaigns; CAMPAIGNS for none
    action: np.ndarray
    occurred_at: np.ndarray
    variant: np.ndarray


@functools.cache
def contact_emails() -> list[str]:
    """The contacts' emails in key order (the same at every store size)."""
    rng = np.random.default_rng([SEED, 1])
    first = ("anna", "ben", "carla", "dev", "emma", "femi", "goran", "hana", "ivan", "jo", "kai", "lena", "marco")
    last = ("smith", "garcia", "nguyen", "müller", "okafor", "rossi", "tanaka", "kowalski", "silva", "dubois")
    domains = ("gmail.com", "outlook.com", "yahoo.fr", "acme.co.uk", "web.de", "proton.me", "example.org")
    picks = rng.integers(0, [len(first), len(last), len(domains)], size=(CONTACTS, 3))
    return sorted(f"{first[f]}.{last[n]}{i}@{domains[d]}" for i, (f, n, d) in enumerate(picks.tolist()))


@functools.cache
def targets() -> tuple[Target, ...]:
    """The target contacts: ordinary emails spread over the key space, not at its ends."""
    emails = contact_emails()
    return tuple(
        Target(emails[CONTACTS * (i + 1) // (len(MATCHING) + 1)], n, n + n // ARCHIVED_SHARE)
        for i, n in enumerate(MATCHING)
    )


@functools.cache
def campaigns() -> tuple[Campaign, ...]:
    """Campaigns sent over the year; every fifth one is to be archived."""
    rng = np.random.default_rng([SEED, 2])
    channels = rng.choice(len(CHANNELS), size=CAMPAIGNS, p=CHANNEL_SHARE).tolist()
    sent = np.sort(rng.integers(YEAR_START, YEAR_END - 7 * DAY, size=CAMPAIGNS)).tolist()
    themes = ("Spring sale", "Newsletter", "Welcome series", "Cart reminder", "Black Friday", "Product launch")
    return tuple(
        Campaign(f"cmp-{i:04d}", f"{themes[i % len(themes)]} #{i}", CHANNELS[c], sent[i], i % 5 == 4)
        for i, c in enumerate(channels)
    )


def store_path(events: int, cache: Path = CACHE, order: str = "key") -> Path:
    suffix = "" if order == "key" else f"-{order}"
    return cache / f"store-v{VERSION}-{events}{suffix}.db"


async def ensure_store(events: int, cache: Path = CACHE, order: str = "key") -> Store:
    """The cached store of `events` events, built first if it is not there."""
    path = store_path(events, cache, order)
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        building = path.with_suffix(".building")
        for leftover in cache.glob(building.name + "*"):  # an interrupted build
            leftover.unlink()
        await build_store(building, events, order)
        building.rename(path)
    return Store(path, events, targets())


async def on_postgres(store: Store, server: PostgresServer) -> Store:
    """A copy of the SQLite `store` in a new database on `server`."""
    began = time.perf_counter()
    url = server.url_of(await server.create_database())
    db = await Database.open(url)
    try:
        account, _ = await create_account(db, "bench")
        for campaign in campaigns():
            await put_campaign(db, account.id, campaign)
    finally:
        await db.close()
    source = sqlite3.connect(store.path)
    conn = await asyncpg.connect(url)
    try:
        _same_keys(
            source.execute("SELECT id, pk FROM campaigns").fetchall(), await conn.fetch("SELECT id, pk FROM campaigns")
        )
        for table in ("events", "archived_events"):
            await _copy_table(source, conn, table)
        last = "SELECT max(seq) FROM (SELECT seq FROM events UNION ALL SELECT seq FROM archived_events) AS every_event"
        await conn.execute(f"SELECT setval('event_seq', ({last}))")
        await conn.execute("VACUUM ANALYZE")
    finally:
        source.close()
        await conn.close()
    print(f"copied {store.events:,} events to PostgreSQL in {time.perf_counter() - began:.0f} s", flush=True)
    return msgspec.structs.replace(store, postgres_url=url)


def _same_keys(sqlite_rows: list, postgres_rows: list) -> None:
    if sorted(map(tuple, sqlite_rows)) != sorted(map(tuple, postgres_rows)):
        raise AssertionError("the campaigns' keys differ between the SQLite store and its PostgreSQL copy")


async def _copy_table(source: sqlite3.Connection, conn: asyncpg.Connection, table: str) -> None:
    columns = EVENT_COLUMNS
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while chunk := cursor.fetchmany(BATCH):
        await conn.copy_records_to_table(table, records=chunk, columns=columns)


async def build_store(path: Path, events: int, order: str) -> None:
    """Write the store through the store layer, timing each step.

    order "key": by (contact, time), so each batch appends to the clustered key's end, and the
    campaigns to archive are put archived at first, so that insert_events stores their events
    in `archived_events` (archiving them afterwards rewrites a page for almost every event
    moved: 43 s of a 64 s build of 1M events).
    order "arrival": by time, as a live store grows, every insert landing inside the table;
    campaigns are archived at the end by put_campaign, which moves their events.
    """
    began = time.perf_counter()
    plan = _plan(events)
    sequence = np.lexsort((plan.occurred_at, plan.contact)) if order == "key" else np.argsort(plan.occurred_at)
    planned = time.perf_counter()
    archive_last = order == "arrival"
    db = await Database.open(f"sqlite:///{path}")
    try:
        account, _ = await create_account(db, "bench")
        every_campaign = campaigns()
        for campaign in every_campaign:
            await put_campaign(
                db, account.id, msgspec.structs.replace(campaign, archived=campaign.archived and not archive_last)
            )
        for batch in _batches(plan, sequence, every_campaign):
            await insert_events(db, account.id, batch)
        inserted = time.perf_counter()
        for campaign in every_campaign:
            if campaign.archived and archive_last:
                await put_campaign(db, account.id, campaign)
    finally:
        await db.close()  # the last connection to close checkpoints the WAL into the file
    done = time.perf_counter()
    print(
        f"built {events:,} events ({order} order) in {done - began:.0f} s: planned in {planned - began:.1f} s,"
        f" inserted in {inserted - planned:.0f} s ({events / (inserted - planned):,.0f}/s),"
        f" archived {sum(c.archived for c in every_campaign)} campaigns in {done - inserted:.0f} s",
        flush=True,
    )


def _plan(events: int) -> _Plan:
    parts = [_target_plan(i, target) for i, target in enumerate(targets())]
    bulk = events - sum(len(part.contact) for part in parts)
    if bulk < 0:
        raise ValueError(f"a store needs more than the target contacts' {events - bulk:,} events")
    parts.append(_bulk_plan(bulk))
    return _Plan(*(np.concatenate([getattr(part, f) for part in parts]) for f in _Plan.__struct_fields__))


def _bulk_plan(count: int) -> _Plan:
    """`count` events of the other contacts, heavy-tailed per contact."""
    rng = np.random.default_rng([SEED, 3, count])
    weights = np.random.default_rng([SEED, 4]).pareto(1.5, size=CONTACTS) + 1.0
    weights[[_contact_index(t.email) for t in targets()]] = 0  # their events are the targets' own
    contact = rng.choice(CONTACTS, size=count, p=weights / weights.sum()).astype(np.int32)
    return _events_of(rng, contact, has_campaign=rng.random(count) >= NO_CAMPAIGN_SHARE)


def _target_plan(index: int, target: Target) -> _Plan:
    """Exactly `target.matching` email events in the window on live campaigns, and the rest."""
    rng = np.random.default_rng([SEED, 5, index])
    n = target.matching
    every = campaigns()
    live_email = [i for i, c in enumerate(every) if c.channel == "email" and not c.archived]
    archived_email = [i for i, c in enumerate(every) if c.channel == "email" and c.archived]
    other = [i for i, c in enumerate(every) if c.channel != "email"]
    groups = (  # (campaigns, count, window): each group's events, times uniform in its window
        (live_email, n, (SEARCH.start, SEARCH.end)),
        (archived_email, n // ARCHIVED_SHARE, (SEARCH.start, SEARCH.end)),
        (other, n // OTHER_SHARE, (SEARCH.start, SEARCH.end)),
        (live_email, n // OTHER_SHARE, (YEAR_START, SEARCH.start)),
    )
    campaign = np.concatenate([rng.choice(pool, size=count) for pool, count, _ in groups])
    occurred_at = np.concatenate([rng.integers(start, end, size=count) for _, count, (start, end) in groups])
    contact = np.full(len(campaign), _contact_index(target.email), dtype=np.int32)
    return _Plan(
        contact, campaign, _actions(rng, campaign), occurred_at, rng.integers(0, DETAIL_VARIANTS, len(contact))
    )


def _events_of(rng: np.random.Generator, contact: np.ndarray, has_campaign: np.ndarray) -> _Plan:
    """Campaign events shortly after their campaign's sending; others at any time."""
    count = len(contact)
    sent = np.array([c.sent_at for c in campaigns()] + [YEAR_START])
    popularity = np.random.default_rng([SEED, 6]).lognormal(0, 1, CAMPAIGNS)
    campaign = rng.choice(CAMPAIGNS, size=count, p=popularity / popularity.sum())
    campaign[~has_campaign] = CAMPAIGNS
    delay = np.where(has_campaign, rng.exponential(2 * DAY, count), rng.integers(0, YEAR_END - YEAR_START, count))
    occurred_at = np.minimum(sent[campaign] + delay.astype(np.int64), YEAR_END - 1)
    return _Plan(contact, campaign, _actions(rng, campaign), occurred_at, rng.integers(0, DETAIL_VARIANTS, count))


def _actions(rng: np.random.Generator, campaign: np.ndarray) -> np.ndarray:
    """Each event's action code, drawn by its campaign's channel."""
    channel_of = [c.channel for c in campaigns()] + [None]
    channel = np.array([CHANNELS.index(c) if c else len(CHANNELS) for c in channel_of])[campaign]
    action = np.zeros(len(campaign), dtype=np.int16)
    for number, shares in enumerate(ACTION_SHARES.values()):
        chosen = channel == number
        codes = [ACTION_CODES[name] for name in shares]
        action[chosen] = rng.choice(codes, size=int(chosen.sum()), p=list(shares.values()))
    return action


def _batches(plan: _Plan, sequence: np.ndarray, every_campaign: tuple[Campaign, ...]) -> Iterator[list[NewEvent]]:
    emails = contact_emails()
    campaign_ids = [c.id for c in every_campaign] + [None]
    details = _details()
    for start in range(0, len(sequence), BATCH):
        chosen = sequence[start : start + BATCH]
        columns = (plan.contact[chosen], plan.action[chosen], plan.occurred_at[chosen], plan.campaign[chosen])
        variants = plan.variant[chosen].tolist()
        yield [
            NewEvent(None, emails[c], a, t, campaign_ids[k], details[a][v])
            for c, a, t, k, v in zip(*(column.tolist() for column in columns), variants, strict=True)
        ]


def _details() -> dict[int, list[bytes | None]]:
    """DETAIL_VARIANTS details for each action, as a sender would attach them."""
    rng = np.random.default_rng([SEED, 7])
    subjects = ("Your order has shipped", "20% off this weekend", "We miss you", "New in: autumn", "Your receipt")
    agents = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)", "Mozilla/5.0 (Windows NT 10.0; Win64)")
    reasons = ("mailbox full", "unknown user", "domain not found", "message rejected as spam")

    def one(code: int, n: int) -> bytes | None:
        name = next(name for name, c in ACTION_CODES.items() if c == code)
        kind = name.partition(".")[2]
        if kind in ("sent", "delivered", "entered", "step_completed"):
            return msgspec.json.encode(
                {"subject": subjects[n % len(subjects)], "message_id": f"<{rng.bytes(8).hex()}@mta>"}
            )
        if kind in ("opened", "forwarded"):
            return msgspec.json.encode({"user_agent": agents[n % len(agents)], "ip": f"203.0.113.{n}"})
        if kind == "clicked":
            return msgspec.json.encode({"url": f"https://shop.example.com/p/{rng.integers(10_000)}?utm_source=email"})
        if kind in ("bounced", "failed"):
            return msgspec.json.encode({"reason": reasons[n % len(reasons)], "smtp_code": 550})
        if kind in ("profile_updated", "form_submitted"):
            return msgspec.json.encode({"fields": ["first_name", "city"][: 1 + n % 2], "source": "web"})
        return None

    return {code: [one(code, n) for n in range(DETAIL_VARIANTS)] for code in ACTION_CODES.values()}


def _contact_index(email: str) -> int:
    return contact_emails().index(email)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--order", choices=("key", "arrival"), default="key")
    parser.add_argument("--cache", type=Path, default=CACHE)
    arguments = parser.parse_args()
    store = asyncio.run(ensure_store(arguments.events, arguments.cache, arguments.order))
    print(store.path)
