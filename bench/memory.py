"""Peak memory (RSS) of the worker computing a big report, and of the API exporting it.

Builds (once, cached in bench/.cache/) a store through the store layer in which one contact
has N events, one a minute, in key order. Then, with real `contactreports serve` and
`contactreports worker` processes, it measures two reports of that contact: a smaller
window first (the baseline: 100,000 rows at full size), then all N rows (1,000,000):
- the worker's peak RSS while it computes the report (created over HTTP);
- the API's peak RSS while it serves the report as CSV, and as XLSX (downloaded over HTTP,
  streamed to disk here, its rows counted).

A peak is VmHWM from /proc/<pid>/status (Linux): the kernel's own high-water mark, so no
short spike between samples is missed. Each export is served by an API process that
served nothing before, so its lifetime peak is that export's alone. The one worker computes
both reports, its peak reset to its current RSS (`echo 5 > /proc/<pid>/clear_refs`) before
each; the smaller goes first, so memory the bigger kept cannot inflate the baseline.

"Flat" (DESIGN.md: under 200 MB, streamed in chunks) means the peak does not grow with the
report: the benchmark prints each peak, its growth over the process's idle RSS, and the
ratio of the big report's peak to the baseline's.

On PostgreSQL (`--backend`; a private server, bench/common.py) the store is built anew in a
database of its own each run; the peaks are the API's and the worker's, not the server's.

    .venv/bin/python bench/memory.py [--size tiny|small|full] [--backend both] [--rows N] [--baseline-rows N]
"""

from __future__ import annotations

import asyncio
import csv
import re
import shutil
import time
import zipfile
from datetime import datetime
from pathlib import Path

import httpx
import msgspec
import psutil

from common import PostgresServer, backends, postgres, size_parser, work_folder
from contactreports.catalogue import ACTION_CODES, CATEGORY_ACTIONS
from contactreports.cli.embedded_redis import free_port
from contactreports.models import Campaign, NewEvent, datetime_to_ms, format_ms
from contactreports.store.accounts import create_account
from contactreports.store.campaigns import put_campaign
from contactreports.store.database import Database
from contactreports.store.events import insert_events
from services import running, wait_healthy

CACHE = Path(__file__).parent / ".cache"
STORE_VERSION = 1  # bump when build() changes, so a stale cached store is never reused
API_KEY = "cr_bench_memory_only"
AUTHORIZATION = {"Authorization": f"Bearer {API_KEY}"}
CONTACT = "big@example.com"
START = 1_767_225_600_000  # 2026-01-01
MINUTE = 60_000  # one event a minute: 1,000,000 events span 694 days, inside the 3-year window
CAMPAIGNS = 10
BATCH = 50_000
TARGET_MB = 200
# The big report has 4 to 10 times the baseline's rows: memory that grew with the rows shows
# as a peak well above the baseline's (an export that held all rows at once: 1.97x at 200,000).
FLAT = 1.2
LABELS = {"job": "worker, report job", "csv": "API, CSV export", "xlsx": "API, XLSX export"}
SETTLE_SECONDS = 10
ROWS = {"tiny": (10_000, 2_000), "small": (200_000, 50_000), "full": (1_000_000, 100_000)}


async def build(url: str, events: int) -> None:
    """The contact's events in key order (so each batch appends to the table: a fast build)."""
    db = await Database.open(url)
    account, _ = await create_account(db, "bench", API_KEY)
    for n in range(CAMPAIGNS):
        await put_campaign(db, account.id, Campaign(f"c{n}", f"Newsletter {n + 1}", "email", START, False))
    codes = [ACTION_CODES[action] for action in CATEGORY_ACTIONS["email"]]
    started = time.perf_counter()
    for first in range(0, events, BATCH):
        await insert_events(db, account.id, [_event(n, codes) for n in range(first, min(first + BATCH, events))])
    print(f"built {events:,} events through the store in {time.perf_counter() - started:.0f} s")
    await db.close()


def _event(n: int, codes: list[int]) -> NewEvent:
    campaign = f"c{n % (CAMPAIGNS + 1)}" if n % (CAMPAIGNS + 1) < CAMPAIGNS else None  # some have none
    details = msgspec.json.encode({"url": f"https://shop.example/products/{n % 9973}?utm=newsletter", "n": n})
    return NewEvent(None, CONTACT, codes[n % len(codes)], START + n * MINUTE, campaign, details)


class Peak(msgspec.Struct):
    """One measurement of one process."""

    idle_mb: float  # its RSS before the work, once started and settled
    peak_mb: float  # its peak RSS (VmHWM) during the work
    seconds: float  # how long the work took

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.idle_mb


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)[1]) / 1024


async def settled_rss_mb(pid: int) -> float:
    """The process's RSS once it stops changing: it has finished starting up (a worker
    connects to Redis after the API is healthy) and is idle."""
    deadline, readings = time.monotonic() + SETTLE_SECONDS, [rss_mb(pid)]
    while time.monotonic() < deadline and (len(readings) < 5 or max(readings[-5:]) - min(readings[-5:]) > 0.25):
        await asyncio.sleep(0.1)
        readings.append(rss_mb(pid))
    return readings[-1]


def service_pid(*command: str) -> int:
    """The pid of the `contactreports <command>` process that services.running started."""
    for child in psutil.Process().children():
        if child.cmdline()[1:] == ["-m", "contactreports", *command]:
            return child.pid
    raise LookupError(f"no contactreports {' '.join(command)} process")


async def create_and_wait(http: httpx.AsyncClient, rows: int) -> dict:
    """Create the report of the contact's first `rows` events; the report once done."""
    search = {
        "email": CONTACT,
        "categories": ["email"],
        "start": format_ms(START),
        "end": format_ms(START + rows * MINUTE),
    }
    response = await http.post("/api/reports", json=search)
    assert response.status_code == 202, response.text
    report = response.json()
    while report["status"] not in ("done", "failed"):
        await asyncio.sleep(0.05)
        report = (await http.get(f"/api/reports/{report['id']}")).json()
    assert report["status"] == "done" and report["row_count"] == rows, report
    return report


async def download(http: httpx.AsyncClient, report_id: str, format: str, file: Path) -> None:
    async with http.stream("GET", f"/api/reports/{report_id}/export", params={"format": format}) as response:
        assert response.status_code == 200, await response.aread()
        with file.open("wb") as out:
            async for chunk in response.aiter_bytes(64 * 1024):
                out.write(chunk)


def csv_rows(file: Path) -> int:
    with file.open(newline="", encoding="utf-8") as text:
        return sum(1 for _ in csv.reader(text)) - 1  # less the header


def xlsx_rows(file: Path) -> int:
    """Rows on every sheet, less each sheet's header: `<row ` tags counted in the sheets' XML."""
    rows = 0
    with zipfile.ZipFile(file) as book:
        sheets = [name for name in book.namelist() if name.startswith("xl/worksheets/sheet")]
        for name in sheets:
            with book.open(name) as xml:
                tail = b""
                while chunk := xml.read(1 << 20):
                    rows += (tail + chunk).count(b"<row ") - tail.count(b"<row ")
                    tail = chunk[-4:]
    return rows - len(sheets)


COUNT_ROWS = {"csv": csv_rows, "xlsx": xlsx_rows}


async def job_peak(http: httpx.AsyncClient, worker: int, idle_mb: float, rows: int) -> tuple[Peak, str]:
    """The worker's peak computing a report of `rows` rows (created over HTTP); the report's id."""
    Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := the current RSS
    report = await create_and_wait(http, rows)
    # The job's own time; times are whole milliseconds, and a tiny job can take less than one.
    seconds = max(_ms(report["finished_at"]) - _ms(report["started_at"]), 1) / 1000
    return Peak(idle_mb, rss_mb(worker, "VmHWM"), seconds), report["id"]


async def export_peak(port: int, report_id: str, rows: int, format: str, file: Path) -> Peak:
    """The peak of the API process on `port`, which served nothing before this export (downloaded
    here, its rows counted)."""
    pid = service_pid("serve", "--port", str(port))
    idle = await settled_rss_mb(pid)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTHORIZATION, timeout=None) as http:
        started = time.perf_counter()
        await download(http, report_id, format, file)
        peak = Peak(idle, rss_mb(pid, "VmHWM"), time.perf_counter() - started)
    exported = COUNT_ROWS[format](file)
    assert exported == rows, f"{format}: {exported:,} rows, expected {rows:,}"
    file.unlink()
    return peak


async def measure(work: Path, database_url: str, sizes: tuple[int, int]) -> list[dict[str, Peak]]:
    """Each size's peaks, smallest first. The worker and every API process start at once."""
    ports = {(rows, format): free_port() for rows in sizes for format in COUNT_ROWS}
    exporters = [["serve", "--port", str(port)] for port in ports.values()]
    async with (
        running(work, database_url, ["worker"], *exporters) as url,
        httpx.AsyncClient(base_url=url, headers=AUTHORIZATION, timeout=None) as http,
    ):
        for port in ports.values():
            await wait_healthy(f"http://127.0.0.1:{port}")
        worker = service_pid("worker")
        idle = await settled_rss_mb(worker)
        results = []
        for rows in sorted(sizes):
            peaks = {}
            peaks["job"], report_id = await job_peak(http, worker, idle, rows)
            for format in COUNT_ROWS:
                peaks[format] = await export_peak(ports[rows, format], report_id, rows, format, work / "export")
            results.append(peaks)
    return results


def _ms(timestamp: str) -> int:
    return datetime_to_ms(datetime.fromisoformat(timestamp))


async def main(rows: int, baseline_rows: int, cache: Path, choice: str) -> None:
    chosen = backends(choice)
    with postgres("postgresql" in chosen) as server:
        for backend in chosen:
            with work_folder(f"memory-{backend}") as work:
                url = await store_url(backend, rows, cache, work, server)
                baseline, big = await measure(work, url, (baseline_rows, rows))
            report(backend, rows, baseline_rows, big, baseline)


async def store_url(backend: str, rows: int, cache: Path, work: Path, server: PostgresServer | None) -> str:
    """A store to measure on. SQLite: a copy of the cached store (reports are written to the copy;
    the cache stays as built), built first if it is not there. PostgreSQL: built anew."""
    if backend == "postgresql":
        assert server is not None
        url = server.url_of(await server.create_database())
        await build(url, rows)
        return url
    cached = cache / f"memory-v{STORE_VERSION}-{rows}.db"
    if not cached.exists():
        cache.mkdir(parents=True, exist_ok=True)
        await build(f"sqlite:///{cached}", rows)
    shutil.copy(cached, work / "bench.db")
    return f"sqlite:///{work / 'bench.db'}"


def report(backend: str, rows: int, baseline_rows: int, big: dict[str, Peak], baseline: dict[str, Peak]) -> None:
    print(
        f"{backend}: peak RSS, {rows:,}-row report vs {baseline_rows:,}-row baseline, exports each by a new process"
        f" (target: flat, under {TARGET_MB} MB; flat here: the peak at most {FLAT}x the baseline's):"
    )
    for name, label in LABELS.items():
        one, other = big[name], baseline[name]
        ratio = one.peak_mb / other.peak_mb
        verdict = "met" if one.peak_mb < TARGET_MB and ratio <= FLAT else "MISSED"
        print(
            f"  {label:<18} {one.peak_mb:6.1f} MB ({one.growth_mb:+5.1f} MB over idle), baseline"
            f" {other.peak_mb:6.1f} MB ({other.growth_mb:+5.1f} MB): {ratio:.2f}x; target {verdict}"
        )
    print(f"side figures, the {rows:,}-row report:")
    for name, label in LABELS.items():
        print(f"  {label:<18} {rows / big[name].seconds:9,.0f} rows/s ({big[name].seconds:.1f} s)")


if __name__ == "__main__":
    parser = size_parser(__doc__)
    parser.add_argument("--rows", type=int, help="rows of the big report (by size: 10k, 200k, 1M)")
    parser.add_argument("--baseline-rows", type=int, help="rows of the smaller report (by size: 2k, 50k, 100k)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where built stores are kept")
    arguments = parser.parse_args()
    big, small = ROWS[arguments.size]
    asyncio.run(main(arguments.rows or big, arguments.baseline_rows or small, arguments.cache, arguments.backend))
