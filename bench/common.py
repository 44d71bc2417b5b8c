"""What every benchmark shares: the `--size` flag.

- `tiny`: CI's smoke run (tests/test_bench_smoke.py): the benchmark still works; no figure counts.
- `small` (the default): every benchmark together in under 10 minutes (`bench/run_all.py`).
- `full`: the sizes DESIGN.md's targets name (10M events, 1M-row reports, ...).
"""

from __future__ import annotations

import argparse

SIZES = ("tiny", "small", "full")


def size_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with `--size`; a benchmark adds its own overrides to it."""
    result = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--size", choices=SIZES, default="small", help="tiny: CI smoke; small: default; full: targets")
    return result
