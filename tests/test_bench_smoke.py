"""The benchmarks still run (at a tiny size; their timings are not checked here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_job_vs_sqlite_runs(tmp_path: Path) -> None:
    output = run("job_vs_sqlite.py", "--events", "20000", "--cache", str(tmp_path))

    assert "20,000 events, 5,000 matching rows, best of 5:" in output
    assert re.search(r"report job +[\d.]+ ms +\([\d.]+x plain sqlite3\)", output)


def test_submit_to_done_runs() -> None:
    output = run("submit_to_done.py", "--runs", "3")

    assert re.search(r"submit -> done over HTTP, 3 runs, 49 rows: p50 [\d.]+ ms, p99 [\d.]+ ms", output)


def test_ingest_runs() -> None:
    output = run("ingest.py", "--events", "20000")

    assert "20,000 events into an empty store:" in output
    assert re.search(r"contactreports import +[\d,]+ events/s storing", output)
    assert re.search(r"POST /api/events +[\d,]+ events/s", output)
