"""Every benchmark, one after another, each as its own process (so one's memory or threads
cannot colour the next one's figures).

    .venv/bin/python bench/run_all.py                      # small sizes, SQLite then PostgreSQL
    .venv/bin/python bench/run_all.py --backend sqlite     # one backend: under 10 minutes
    .venv/bin/python bench/run_all.py --full               # the sizes DESIGN.md's targets name

Stores that take long to build are cached in bench/.cache/ and reused by later runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import BACKENDS

BENCH = Path(__file__).parent
BENCHMARKS = ("job_vs_sqlite", "submit_to_done", "ingest", "webhooks", "polling", "memory", "drain")


def main() -> int:
    arguments = _arguments()
    failed = []
    started = time.perf_counter()
    for name in BENCHMARKS:
        print(f"\n== {name} ({arguments.size}, {arguments.backend})", flush=True)
        began = time.perf_counter()
        script = str(BENCH / f"{name}.py")
        code = subprocess.call([sys.executable, script, "--size", arguments.size, "--backend", arguments.backend])
        print(f"== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {time.perf_counter() - began:.0f} s")
        if code:
            failed.append(name)
    print(f"\nall benchmarks ({arguments.size}) in {time.perf_counter() - started:.0f} s; failed: {failed or 'none'}")
    return 1 if failed else 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--full", dest="size", action="store_const", const="full", help="DESIGN.md's sizes")
    sizes.add_argument("--tiny", dest="size", action="store_const", const="tiny", help="CI's smoke size")
    parser.set_defaults(size="small")
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
