"""The benchmarks still run, at their tiny size; their timings are not checked here.

Each benchmark's test asserts the lines that carry its figures, so a benchmark that stops
measuring (not only one that crashes) fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--size", "tiny", *args], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_job_vs_sqlite_runs(tmp_path: Path) -> None:
    output = run("job_vs_sqlite.py", "--events", "20000", "--cache", str(tmp_path))

    assert "20,000 events, 5,000 matching rows, best of 5:" in output
    assert re.search(r"report job +[\d.]+ ms +\([\d.]+x plain sqlite3\)", output)


def test_submit_to_done_runs() -> None:
    output = run("submit_to_done.py")

    assert re.search(r"submit -> done over HTTP, 3 runs, 49 rows: p50 [\d.]+ ms, p99 [\d.]+ ms", output)


def test_ingest_runs() -> None:
    output = run("ingest.py", "--events", "20000")

    assert "20,000 events into an empty store:" in output
    assert re.search(
        r"contactreports import +[\d,]+ events/s storing, [\d,]+/s for the whole command; plain sqlite3 in "
        r"transactions of 100,000: [\d,]+/s \([\d.]+x storing, [\d.]+x whole; target >= 100,000/s\)",
        output,
    )
    assert re.search(
        r"POST /api/events +[\d,]+ events/s; plain sqlite3 in transactions of 10,000: [\d,]+/s \([\d.]+x; target",
        output,
    )


def test_run_all_knows_every_benchmark() -> None:
    """A benchmark left out of bench/run_all.py would silently drop out of the suite."""
    listed = subprocess.run(
        [sys.executable, "-c", "import run_all; print(*run_all.BENCHMARKS)"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    helpers = {"common", "run_all", "services"}

    assert sorted(listed) == sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in helpers)
