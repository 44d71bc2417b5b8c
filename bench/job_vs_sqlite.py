"""Report job time vs the plain driver (benchmark 1), and as the store grows (benchmark 7), on
SQLite and on PostgreSQL (`--backend`).

Stores come from bench/dataset.py (built once through the store layer, cached in bench/.cache/;
building took 24 s, 29 s, 94 s and 288 s for 300k, 1M, 3M and 10M events on a loaded machine).
Each has three target contacts with 50, 5,000 and 50,000 events matching the search (every
email action over 11 months), and a quarter as many again on archived campaigns.

1. On the store of the size's events (tiny 100k, small 1M, full 10M), for each target, without
   and with archived campaigns: the report job, called in this process as the worker calls it,
   against the least work a report needs with the plain driver: reading the same rows and
   inserting them, in one transaction, into a table with report_rows' key (for the archived
   search from both tables): one INSERT ... SELECT, as the job's chunks are, with plain sqlite3 in
   this process or plain asyncpg, the rows never leaving the database. PostgreSQL stores are copies of the
   SQLite ones (bench/dataset.py, `on_postgres`). Targets: job <= 1.5x plain; with archived <= 2x
   the job without.
2. Growth: the job for the same contacts on stores of growing size (full 1M, 3M, 10M; small
   300k, 1M, 3M); target: largest store <= 1.3x the smallest (an index range scan, not a scan).

Every figure is the best of several rounds, each running every case once; next to the wall
times, the CPU times (of the whole process), which waiting for a core held by other work on a
shared machine does not disturb. `--plot` draws the SQLite wall times as docs/job-time.png.

    .venv/bin/python bench/job_vs_sqlite.py [--size small] [--backend both] [--plot]
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import msgspec

from common import PostgresServer, backends, postgres, size_parser
from contactreports.catalogue import ACTION_CODES
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.store.database import Database
from contactreports.store.reports import create_report, delete_report
from dataset import CACHE, SEARCH, Store, Target, ensure_store, on_postgres

if TYPE_CHECKING:
    from matplotlib.axes import Axes

STORE = {"tiny": 100_000, "small": 1_000_000, "full": 10_000_000}
GROWTH = {
    "tiny": (100_000, 120_000),
    "small": (300_000, 1_000_000, 3_000_000),
    "full": (1_000_000, 3_000_000, 10_000_000),
}
RUNS = {"tiny": 1, "small": 10, "full": 10}
PLOT = Path(__file__).parents[1] / "docs" / "job-time.png"
PLAIN = {"sqlite": "plain sqlite3", "postgresql": "plain asyncpg"}
# A report's rows as the plain driver keeps them: a table with report_rows' key, the least a
# report needs (its rows are paged in key order, and the key keeps each row once). A table without
# a key is no baseline on PostgreSQL: its rows could not be paged, and the key's index is more than
# half of the insert's time there (EXPLAIN ANALYZE of the 50,000-row copy).
BASELINE_TABLE = "bench_plain_copy"
# Made anew by each run: one that a run cut short left behind may have another shape.
DROP_BASELINE = f"DROP TABLE IF EXISTS {BASELINE_TABLE}"
CREATE_BASELINE = (
    f"CREATE TABLE {BASELINE_TABLE} (account_id BIGINT, report_pk BIGINT, occurred_at BIGINT,"
    " seq BIGINT, action BIGINT, campaign_pk BIGINT, details TEXT,"
    " PRIMARY KEY (account_id, report_pk, occurred_at, seq))"
)
COLOURS = ("tab:green", "tab:blue", "tab:red")


class Case(msgspec.Struct, frozen=True):
    store: Store
    target: Target
    include_archived: bool


class Figure(msgspec.Struct, frozen=True):
    store_events: int
    target: Target
    include_archived: bool
    rows: int
    job: float  # seconds, best of the runs
    plain: float
    # CPU seconds of the whole process (the job's aiosqlite thread included), best of the runs:
    # time spent waiting for a core that other work holds is not in it.
    job_cpu: float
    plain_cpu: float


async def main(size: str, cache: Path, plot: bool, choice: str) -> None:
    stores = {events: await ensure_store(events, cache) for events in (STORE[size], *GROWTH[size])}
    chosen = backends(choice)
    with postgres("postgresql" in chosen) as server:
        for backend in chosen:
            on_backend = await _stores_on(backend, stores, server)
            await measure_backend(
                size, on_backend[STORE[size]], [on_backend[n] for n in GROWTH[size]], plot and backend == "sqlite"
            )


async def _stores_on(backend: str, stores: dict[int, Store], server: PostgresServer | None) -> dict[int, Store]:
    """The SQLite `stores`, or their copies on `server` (the SQLite ones are built either way)."""
    if backend == "sqlite":
        return stores
    assert server is not None
    return {events: await on_postgres(store, server) for events, store in stores.items()}


async def measure_backend(size: str, store: Store, growing: list[Store], plot: bool) -> None:
    runs = RUNS[size]
    plain = PLAIN[store.backend]
    cases = [Case(store, target, archived) for target in store.targets for archived in (False, True)]
    cases += [Case(other, target, False) for other in growing for target in other.targets]
    figures = await measure(list(dict.fromkeys(cases)), runs)

    print(f"\n1. {store.backend}: report job vs {plain}: {store.events:,} events, best of {runs}")
    for target in store.targets:
        live, archived = (figures[Case(store, target, include)] for include in (False, True))
        print(f"  {_line(live, plain)}; target <= 1.5x")
        print(f"  {_line(archived, plain)}; {archived.job / live.job:.2f}x the job without archived (target <= 2x)")
    sizes = ", ".join(f"{other.events:,}" for other in growing)
    print(f"\n7. {store.backend}: growth: the same contacts on stores of {sizes} events, best of {runs}")
    for target in store.targets:
        row = [figures[Case(other, target, False)] for other in growing]
        print(
            f"  {target.matching:>7,} rows: job {_times(f.job for f in row)}: {row[-1].job / row[0].job:.2f}x"
            f" largest/smallest (target <= 1.3x); {plain} {_times(f.plain for f in row)}:"
            f" {row[-1].plain / row[0].plain:.2f}x; CPU: job {row[-1].job_cpu / row[0].job_cpu:.2f}x,"
            f" {plain} {row[-1].plain_cpu / row[0].plain_cpu:.2f}x"
        )
    if plot:
        by_rows = [figures[case] for case in cases if case.store == store]
        draw(by_rows, [figures[Case(other, t, False)] for other in growing for t in other.targets], PLOT)
        print(f"\nplotted in {PLOT}")


async def measure(cases: list[Case], runs: int) -> dict[Case, Figure]:
    """The best of `runs` rounds, each running every case once, the job then the plain driver.

    Rounds rather than all the runs of one case in a row: a burst of load from other work on a
    shared machine then slows one round of every case instead of every run of one case.
    """
    stores = list(dict.fromkeys(case.store for case in cases))
    dbs = {store: await Database.open(store.url) for store in stores}
    plains = {store: await _Plain.open(store) for store in stores}
    best = {case: [float("inf")] * 4 for case in cases}  # job, plain, job CPU, plain CPU
    rows: dict[Case, int] = {}
    try:
        for _ in range(runs):
            for case in cases:
                await plains[case.store].settle()
                job, rows[case] = await _job_once(dbs[case.store], case)
                await plains[case.store].settle()
                plain, plain_rows = await plains[case.store].copy(case)
                times = (job.wall, plain.wall, job.cpu, plain.cpu)
                best[case] = [min(pair) for pair in zip(best[case], times, strict=True)]
                if plain_rows != rows[case]:
                    raise AssertionError(f"{case}: the job copied {rows[case]:,} rows, the plain driver {plain_rows:,}")
    finally:
        for db in dbs.values():
            await db.close()  # an open aiosqlite connection's thread would keep the process alive
        for plain in plains.values():
            await plain.close()
    return {
        case: Figure(case.store.events, case.target, case.include_archived, rows[case], *best[case]) for case in cases
    }


class _Stopwatch:
    """Wall and CPU seconds of the block it times."""

    def __enter__(self) -> _Stopwatch:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


async def _job_once(db: Database, case: Case) -> tuple[_Stopwatch, int]:
    """The report job as the worker runs it, on a fresh report; (its time, its rows)."""
    spec = msgspec.structs.replace(SEARCH, email=case.target.email, include_archived=case.include_archived)
    report = await create_report(db, 1, spec)
    with _Stopwatch() as clock:
        result = await generate_report(job_context(Settings(database_url=case.store.url), db), 1, report.id, 1)
    await delete_report(db, 1, report.id)
    return clock, int(result.split()[1])


def _matching(case: Case, placeholders: tuple[str, str, str]) -> str:
    """The SELECT of the rows a case's report copies, from both tables for the archived search,
    its parameters (email, start, end) written as `placeholders`."""
    tables = ("events", "archived_events") if case.include_archived else ("events",)
    codes = ", ".join(str(ACTION_CODES[action]) for action in SEARCH.actions)
    email, start, end = placeholders
    return " UNION ALL ".join(
        f"SELECT occurred_at, seq, action, campaign_pk, details FROM {table} WHERE account_id = 1"
        f" AND email = {email} AND occurred_at >= {start} AND occurred_at < {end} AND action IN ({codes})"
        for table in tables
    )


def _copy_plain(case: Case, placeholders: tuple[str, str, str]) -> str:
    """The one INSERT ... SELECT of a case's rows into the baseline table."""
    return f"INSERT INTO {BASELINE_TABLE} SELECT 1, 1, * FROM ({_matching(case, placeholders)}) AS matching"


class _Plain(ABC):
    """The plain driver on a store: the least work of copying a case's rows."""

    @staticmethod
    async def open(store: Store) -> _Plain:
        if store.backend == "sqlite":
            return _PlainSQLite(store)
        conn = await asyncpg.connect(store.url)
        await conn.execute(DROP_BASELINE)
        await conn.execute(CREATE_BASELINE)
        return _PlainPostgres(conn)

    @abstractmethod
    async def settle(self) -> None:
        """Leave nothing of the last case for the next to pay for."""

    @abstractmethod
    async def copy(self, case: Case) -> tuple[_Stopwatch, int]:
        """Read the matching rows and insert them into a table, in one transaction; (its time, its rows)."""

    @abstractmethod
    async def close(self) -> None: ...


class _PlainSQLite(_Plain):
    """Plain sqlite3 on the store, as the store's own connections are set (WAL, synchronous NORMAL)."""

    def __init__(self, store: Store):
        self._conn = sqlite3.connect(store.path, isolation_level=None)
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(DROP_BASELINE)
        self._conn.execute(f"{CREATE_BASELINE} WITHOUT ROWID")  # as report_rows is

    async def settle(self) -> None:
        # Each starts on an empty WAL: else the commit that crosses SQLite's auto-checkpoint
        # (1,000 pages) pays for writing back the pages of the cases before it.
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def copy(self, case: Case) -> tuple[_Stopwatch, int]:
        tables = 2 if case.include_archived else 1
        with _Stopwatch() as clock:
            self._conn.execute("BEGIN")
            copied = self._conn.execute(
                _copy_plain(case, ("?", "?", "?")), (case.target.email, SEARCH.start, SEARCH.end) * tables
            ).rowcount
            self._conn.execute("COMMIT")
        self._conn.execute(f"DELETE FROM {BASELINE_TABLE}")
        return clock, copied

    async def close(self) -> None:
        self._conn.execute(DROP_BASELINE)
        self._conn.close()


class _PlainPostgres(_Plain):
    """Plain asyncpg."""

    def __init__(self, conn: asyncpg.Connection):
        self._conn = conn

    async def settle(self) -> None:
        pass  # the server writes back dirty pages in the background (its checkpointer)

    async def copy(self, case: Case) -> tuple[_Stopwatch, int]:
        with _Stopwatch() as clock:
            async with self._conn.transaction():
                status = await self._conn.execute(
                    _copy_plain(case, ("$1", "$2", "$3")),
                    case.target.email,
                    SEARCH.start,
                    SEARCH.end,
                )
        await self._conn.execute(f"TRUNCATE {BASELINE_TABLE}")
        return clock, int(status.split()[-1])

    async def close(self) -> None:
        await self._conn.execute(DROP_BASELINE)
        await self._conn.close()


def _line(figure: Figure, plain: str) -> str:
    kind = "with archived" if figure.include_archived else "live only    "
    return (
        f"{figure.rows:>7,} rows, {kind}: {plain} {figure.plain * 1000:8.2f} ms, report job"
        f" {figure.job * 1000:8.2f} ms ({figure.job / figure.plain:.2f}x {plain}; CPU"
        f" {figure.plain_cpu * 1000:.2f} / {figure.job_cpu * 1000:.2f} ms, {figure.job_cpu / figure.plain_cpu:.2f}x)"
    )


def _times(seconds: Iterable[float]) -> str:
    return ", ".join(f"{s * 1000:.2f} ms" for s in seconds)


def draw(figures: list[Figure], growth: list[Figure], path: Path) -> None:
    """Job time (solid) and plain sqlite3 (dashed) against matching events, and against store size."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the PNG only
    from matplotlib import pyplot

    fig, (by_rows, by_size) = pyplot.subplots(1, 2, figsize=(12, 5))
    for archived, colour in ((False, "tab:blue"), (True, "tab:orange")):
        label = "with archived" if archived else "live only"
        _curves(by_rows, [f for f in figures if f.include_archived == archived], "rows", colour, label)
    by_rows.set_xscale("log")
    by_rows.set(
        xlabel="matching events (rows copied)", title=f"vs matching events, {figures[0].store_events:,}-event store"
    )
    for target, colour in zip(sorted({f.target for f in growth}, key=lambda t: t.matching), COLOURS, strict=False):
        _curves(by_size, [f for f in growth if f.target == target], "store_events", colour, f"{target.matching:,} rows")
    sizes = sorted({f.store_events for f in growth})
    by_size.set(xlabel="events in the store", title="vs store size, same contacts")
    by_size.set_xscale("log")
    by_size.set_xticks(sizes, [f"{n / 1e6:g}M" for n in sizes], minor=False)
    by_size.set_xticks([], minor=True)
    for axes in (by_rows, by_size):
        axes.set(yscale="log", ylabel="time (ms), best of runs")
        axes.grid(True, which="both", alpha=0.3)
        axes.set_ylim(top=axes.get_ylim()[1] * 8)  # room for the legend above the curves
        axes.legend(fontsize=8, ncols=2)
    fig.suptitle("Report job (solid) vs plain sqlite3 reading + inserting the same rows (dashed)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def _curves(axes: Axes, figures: list[Figure], x: str, colour: str, label: str) -> None:
    figures = sorted(figures, key=lambda f: getattr(f, x))
    xs = [getattr(f, x) for f in figures]
    axes.plot(xs, [f.job * 1000 for f in figures], "o-", color=colour, label=f"report job, {label}")
    axes.plot(xs, [f.plain * 1000 for f in figures], "s--", color=colour, alpha=0.6, label=f"plain sqlite3, {label}")


if __name__ == "__main__":
    parser = size_parser(__doc__)
    parser.add_argument("--cache", type=Path, default=CACHE, help="where built stores are kept")
    parser.add_argument("--plot", action="store_true", help=f"draw SQLite's figures into {PLOT}")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.size, arguments.cache, arguments.plot, arguments.backend))
