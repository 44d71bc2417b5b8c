"""Report job time vs plain sqlite3 (benchmark 1), and as the store grows (benchmark 7).

Stores come from bench/dataset.py (built once through the store layer, cached in bench/.cache/).
Each has three target contacts with 50, 5,000 and 50,000 events matching the search (every
email action over 11 months), and a quarter as many again on archived campaigns.

1. On the store of the size's events (tiny 100k, small 1M, full 10M), for each target, without
   and with archived campaigns: the report job, called in this process as the worker calls it,
   against plain sqlite3 reading the same rows and inserting them into a table in one
   transaction, the least work a report needs (for the archived search it reads both tables).
   Targets: job <= 1.5x plain sqlite3; with archived <= 2x the job without.
2. Growth: the job for the same contacts on stores of growing size (full 1M, 3M, 10M; small
   300k, 1M, 3M); target: largest store <= 1.3x the smallest (an index range scan, not a scan).

Every figure is the best of several runs. `--plot` draws both as docs/job-time.png.

    .venv/bin/python bench/job_vs_sqlite.py [--size small] [--plot]
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from common import size_parser
from contactreports.catalogue import ACTION_CODES
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.store.database import Database
from contactreports.store.reports import create_report, delete_report
from dataset import CACHE, SEARCH, Store, Target, ensure_store

if TYPE_CHECKING:
    from matplotlib.axes import Axes

STORE = {"tiny": 100_000, "small": 1_000_000, "full": 10_000_000}
GROWTH = {
    "tiny": (100_000, 120_000),
    "small": (300_000, 1_000_000, 3_000_000),
    "full": (1_000_000, 3_000_000, 10_000_000),
}
RUNS = {"tiny": 1, "small": 7, "full": 7}
PLOT = Path(__file__).parents[1] / "docs" / "job-time.png"
# A report's rows as plain sqlite3 keeps them: a bare table, no key (the least work).
BASELINE_TABLE = "bench_plain_copy"
COLOURS = ("tab:green", "tab:blue", "tab:red")


class Figure(msgspec.Struct, frozen=True):
    store_events: int
    target: Target
    include_archived: bool
    rows: int
    job: float  # seconds, best of the runs
    plain: float


async def measure(store: Store, target: Target, include_archived: bool, runs: int) -> Figure:
    job, rows = await job_seconds(store, target, include_archived, runs)
    plain, plain_rows = plain_sqlite_seconds(store, target, include_archived, runs)
    if plain_rows != rows:
        raise AssertionError(f"the job copied {rows:,} rows, plain sqlite3 {plain_rows:,}")
    return Figure(store.events, target, include_archived, rows, job, plain)


async def job_seconds(store: Store, target: Target, include_archived: bool, runs: int) -> tuple[float, int]:
    db = await Database.open(store.url)
    spec = msgspec.structs.replace(SEARCH, email=target.email, include_archived=include_archived)
    best, rows = float("inf"), 0
    try:
        for _ in range(runs):
            report = await create_report(db, 1, spec)
            started = time.perf_counter()
            result = await generate_report(job_context(Settings(database_url=store.url), db), report.id, 1)
            best = min(best, time.perf_counter() - started)
            rows = int(result.split()[1])
            await delete_report(db, 1, report.id)
    finally:
        await db.close()  # an open aiosqlite connection's thread would keep the process alive
    return best, rows


def plain_sqlite_seconds(store: Store, target: Target, include_archived: bool, runs: int) -> tuple[float, int]:
    """Read the matching rows and insert them into a table, in one transaction, as the store's
    connections do it (WAL, synchronous NORMAL)."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (occurred_at, seq, action, campaign_pk, details)")
    tables = ("events", "archived_events") if include_archived else ("events",)
    codes = ", ".join(str(ACTION_CODES[action]) for action in SEARCH.actions)
    select = " UNION ALL ".join(
        f"SELECT occurred_at, seq, action, campaign_pk, details FROM {table} WHERE account_id = 1 AND email = ?"
        f" AND occurred_at >= ? AND occurred_at < ? AND action IN ({codes})"
        for table in tables
    )
    best, rows = float("inf"), []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            conn.execute("BEGIN")
            rows = conn.execute(
                f"{select} ORDER BY occurred_at, seq", (target.email, SEARCH.start, SEARCH.end) * len(tables)
            ).fetchall()
            conn.executemany(f"INSERT INTO {BASELINE_TABLE} VALUES (?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            best = min(best, time.perf_counter() - started)
            conn.execute(f"DELETE FROM {BASELINE_TABLE}")
        conn.execute(f"DROP TABLE {BASELINE_TABLE}")
    finally:
        conn.close()
    return best, len(rows)


async def main(size: str, cache: Path, plot: bool) -> None:
    runs = RUNS[size]
    store = await ensure_store(STORE[size], cache)
    print(f"\n1. report job vs plain sqlite3: {store.events:,} events, best of {runs}")
    figures = []
    for target in store.targets:
        live = await measure(store, target, False, runs)
        archived = await measure(store, target, True, runs)
        figures += [live, archived]
        print(f"  {_line(live)}; target <= 1.5x")
        print(f"  {_line(archived)}; {archived.job / live.job:.2f}x the job without archived (target <= 2x)")
    growth = await measure_growth(size, cache, runs)
    if plot:
        draw(figures, growth, PLOT)
        print(f"\nplotted in {PLOT}")


def _line(figure: Figure) -> str:
    kind = "with archived" if figure.include_archived else "live only    "
    return (
        f"{figure.rows:>7,} rows, {kind}: plain sqlite3 {figure.plain * 1000:8.2f} ms, report job"
        f" {figure.job * 1000:8.2f} ms ({figure.job / figure.plain:.2f}x plain sqlite3)"
    )


async def measure_growth(size: str, cache: Path, runs: int) -> list[Figure]:
    stores = [await ensure_store(events, cache) for events in GROWTH[size]]
    sizes = ", ".join(f"{store.events:,}" for store in stores)
    print(f"\n7. growth: the same contacts on stores of {sizes} events, best of {runs}")
    figures = []
    for target in stores[0].targets:
        row = [await measure(store, target, False, runs) for store in stores]
        figures += row
        times = ", ".join(f"{f.job * 1000:.2f} ms" for f in row)
        plain = ", ".join(f"{f.plain * 1000:.2f} ms" for f in row)
        print(
            f"  {target.matching:>7,} rows: job {times}: {row[-1].job / row[0].job:.2f}x largest/smallest"
            f" (target <= 1.3x); plain sqlite3 {plain}: {row[-1].plain / row[0].plain:.2f}x"
        )
    return figures


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
        axes.legend(fontsize=8)
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
    parser.add_argument("--plot", action="store_true", help=f"draw the figures into {PLOT}")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.size, arguments.cache, arguments.plot))
