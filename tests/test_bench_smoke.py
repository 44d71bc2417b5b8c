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
    output = run("job_vs_sqlite.py", "--cache", str(tmp_path))

    assert "1. report job vs plain sqlite3: 100,000 events, best of 1" in output
    for rows in ("50", "5,000", "50,000"):
        assert re.search(
            rf"\b{rows} rows, live only +: plain sqlite3 +[\d.]+ ms, report job +[\d.]+ ms \([\d.]+x", output
        )
    for rows in ("62", "6,250", "62,500"):
        assert re.search(rf"\b{rows} rows, with archived: .* [\d.]+x the job without archived", output)
    assert "7. growth: the same contacts on stores of 100,000, 120,000 events" in output
    assert len(re.findall(r"rows: job [\d.]+ ms, [\d.]+ ms: [\d.]+x largest/smallest", output)) == 3


def test_submit_to_done_runs() -> None:
    output = run("submit_to_done.py")

    assert re.search(r"submit -> done over HTTP, 3 runs, 49 rows: p50 [\d.]+ ms, p99 [\d.]+ ms", output)


def test_ingest_runs() -> None:
    output = run("ingest.py", "--events", "20000")

    assert "20,000 events into an empty store:" in output
    assert re.search(r"contactreports import +[\d,]+ events/s storing", output)
    assert re.search(r"POST /api/events +[\d,]+ events/s", output)


def test_run_all_knows_every_benchmark() -> None:
    """A benchmark left out of bench/run_all.py would silently drop out of the suite."""
    listed = subprocess.run(
        [sys.executable, "-c", "import run_all; print(*run_all.BENCHMARKS)"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    helpers = {"common", "dataset", "run_all", "services"}

    assert sorted(listed) == sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in helpers)
