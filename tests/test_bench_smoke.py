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


PLAIN = {"sqlite": "plain sqlite3", "postgresql": "plain asyncpg"}


def sections(output: str) -> dict[str, str]:
    """A benchmark's output by backend: each backend's part starts at its first line naming it
    (`<backend>:`)."""
    starts = {backend: re.search(rf"^.*\b{backend}:", output, re.MULTILINE).start() for backend in PLAIN}
    return {
        "sqlite": output[starts["sqlite"] : starts["postgresql"]],
        "postgresql": output[starts["postgresql"] :],
    }


def test_job_vs_sqlite_runs_on_both_backends(tmp_path: Path) -> None:
    output = run("job_vs_sqlite.py", "--cache", str(tmp_path))

    for backend, part in sections(output).items():
        plain = PLAIN[backend]
        assert f"1. {backend}: report job vs {plain}: 100,000 events, best of 1" in part
        for rows in ("50", "5,000", "50,000"):
            assert re.search(
                rf"\b{rows} rows, live only +: {plain} +[\d.]+ ms, report job +[\d.]+ ms \([\d.]+x", part
            ), (backend, rows)
        for rows in ("62", "6,250", "62,500"):
            assert re.search(rf"\b{rows} rows, with archived: .* [\d.]+x the job without archived", part)
        assert f"7. {backend}: growth: the same contacts on stores of 100,000, 120,000 events" in part
        assert len(re.findall(r"rows: job [\d.]+ ms, [\d.]+ ms: [\d.]+x largest/smallest", part)) == 3


def test_submit_to_done_runs_on_both_backends() -> None:
    output = run("submit_to_done.py")

    for backend, part in sections(output).items():
        assert re.search(
            rf"{backend}: submit -> done over HTTP, 3 runs, 49 rows: p50 [\d.]+ ms, p99 [\d.]+ ms; "
            r"target p50 < 100 ms: (met|MISSED)",
            part,
        )
        assert re.search(rf"job time \(started -> finished\) p50 [\d.]+ ms; {PLAIN[backend]} .* [\d.]+ ms", part)


def test_ingest_runs_on_both_backends() -> None:
    output = run("ingest.py", "--events", "20000")

    for backend, plain in (("sqlite", "plain sqlite3 (executemany)"), ("postgresql", "plain asyncpg (COPY)")):
        part, plain = sections(output)[backend], re.escape(plain)
        assert f"{backend}: 20,000 events into an empty store:" in part
        assert re.search(
            rf"contactreports import +[\d,]+ events/s storing, [\d,]+/s for the whole command; {plain} in "
            r"transactions of 100,000: [\d,]+/s \([\d.]+x storing, [\d.]+x whole; target >= 100,000/s\)",
            part,
        ), backend
        assert re.search(
            rf"POST /api/events +[\d,]+ events/s; {plain} in transactions of 10,000: [\d,]+/s \([\d.]+x; target",
            part,
        ), backend


def test_memory_runs_on_both_backends(tmp_path: Path) -> None:
    output = run("memory.py", "--rows", "5000", "--baseline-rows", "1000", "--cache", str(tmp_path))

    for backend, part in sections(output).items():
        assert f"{backend}: peak RSS, 5,000-row report vs 1,000-row baseline" in part
        for label in ("worker, report job", "API, CSV export", "API, XLSX export"):
            assert re.search(
                rf"{label} +[\d.]+ MB \( *[+-][\d.]+ MB over idle\), baseline +[\d.]+ MB .*: [\d.]+x", part
            )
            assert re.search(rf"{label} +[\d,]+ rows/s", part)


def test_drain_runs_on_both_backends(tmp_path: Path) -> None:
    output = run("drain.py", "--cache", str(tmp_path))

    figures = r" +\d+ reports/s +CPU [\d.]+ ms \+ Redis [\d.]+ ms +\([\d.]+x the baseline"
    for backend, part in sections(output).items():
        assert re.search(rf"{backend}: drain 50 queued reports from 50 accounts, \d+ rows a report", part)
        assert re.search(r"job called in-process, no queue \(baseline\) +\d+ reports/s +CPU [\d.]+ ms", part)
        assert re.search(rf"1 worker process{figures}; \d+/s counting start-up\)", part)
        assert re.search(rf"2 worker processes{figures}, [\d.]+x one worker; \d+/s counting start-up\)", part)
        assert re.search(rf"{backend} target: >= 200 reports/s with one worker process: (met|MISSED)", part)


def test_polling_runs_on_both_backends() -> None:
    output = run("polling.py", "--compare-uvicorn")

    figures = r"[\d,]+ req/s  p50 +[\d.]+ ms  p99 +[\d.]+ ms  errors 0  CPU per request: "
    figures += r"server [\d,]+ us, load tool [\d,]+ us"
    for backend, part in sections(output).items():
        assert re.search(rf"{backend}: 50 keep-alive clients, 2 server process\(es\)", part)
        assert re.search(r"GET /api/reports/\{id\} +" + figures, part)
        assert re.search(r"floor \(minimal Litestar app\) +" + figures, part)
        assert re.search(r"the same under uvicorn +" + figures, part)
        assert re.search(r"Granian against uvicorn: [\d.]+x the rate, p99 [\d.]+ against [\d.]+ ms, server CPU", part)
        assert re.search(rf"{backend} polling: [\d,]+ req/s, p99 [\d.]+ ms \([\d.]+x the floor's rate\)", part)
        assert re.search(r"load tool ceiling: [\d,]+ req/s", part)
        assert re.search(r"cores busy during the API's load: server [\d.]+ \(2 process\(es\)\), load tool [\d.]+", part)


def test_webhooks_runs_on_both_backends() -> None:
    output = run("webhooks.py")

    figures = r" +[\d,]+ events: webhook +[\d,]+ events/s, POST /api/events +[\d,]+ events/s: [\d.]+x; "
    figures += r"server CPU an event [\d,]+ / [\d,]+ us \([\d.]+x\), load tool [\d,]+ / [\d,]+ us"
    for backend, part in sections(output).items():
        assert re.search(
            rf"{backend}: webhook ingest over HTTP vs POST /api/events, the same events: 1 API process\(es\)", part
        )
        for case in (
            "SendGrid, signed, 100 events a request, 2 clients",
            "SendGrid, signed, 1,000 events a request, 2 clients",
            "Postmark, basic auth, 1 event a request, 8 clients",
            "Postmark, basic auth, 1 event a request, 32 clients",
            "Mailgun, HMAC, 1 event a request, 8 clients",
        ):
            assert re.search(re.escape(case) + figures, part), (backend, case)
        assert "stored: all 17,200 events sent (warmup included), each once, in 5 cases" in part


def test_run_all_knows_every_benchmark() -> None:
    """A benchmark left out of bench/run_all.py would silently drop out of the suite."""
    listed = subprocess.run(
        [sys.executable, "-c", "import run_all; print(*run_all.BENCHMARKS)"],
        cwd=BENCH,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    helpers = {"common", "dataset", "http_load", "run_all", "services"}

    assert sorted(listed) == sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in helpers)
