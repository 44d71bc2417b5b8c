"""What every benchmark shares: the `--size` and `--backend` flags, and the private PostgreSQL.

- `tiny`: CI's smoke run (tests/test_bench_smoke.py): the benchmark still works; no figure counts.
- `small` (the default): every benchmark together in under 10 minutes a backend (`bench/run_all.py`).
- `full`: the sizes DESIGN.md's targets name (10M events, 1M-row reports, ...).

`--backend both` (the default) measures each figure on SQLite, then on PostgreSQL: a private
server the benchmark starts in a temporary folder (the tests' own, tests/postgres_server.py) and
removes after, never the machine's shared one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.append(str(Path(__file__).parents[1] / "tests"))  # after everything else: it shadows nothing
from postgres_server import PostgresServer  # noqa: E402  (one copy, the tests')

SIZES = ("tiny", "small", "full")
BACKENDS = ("sqlite", "postgresql")


def size_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with `--size` and `--backend`; a benchmark adds its own overrides to it."""
    result = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--size", choices=SIZES, default="small", help="tiny: CI smoke; small: default; full: targets")
    result.add_argument(
        "--backend", choices=(*BACKENDS, "both"), default="both", help="the store to measure on (default: both)"
    )
    return result


def backends(choice: str) -> tuple[str, ...]:
    """The backends `--backend choice` names, SQLite first."""
    return BACKENDS if choice == "both" else (choice,)


@contextmanager
def postgres(wanted: bool) -> Iterator[PostgresServer | None]:
    """A private PostgreSQL server if `wanted`, stopped and removed after; else None."""
    if not wanted:
        yield None
        return
    with PostgresServer() as server:
        yield server


@contextmanager
def work_folder(name: str) -> Iterator[Path]:
    """A temporary folder for a benchmark's stores and logs, removed after (a full run's are
    hundreds of MB)."""
    with tempfile.TemporaryDirectory(prefix=f"contactreports-{name}-", ignore_cleanup_errors=True) as folder:
        yield Path(folder)


async def new_store_url(backend: str, work: Path, name: str, server: PostgresServer | None) -> str:
    """The URL of a new empty store (opening it applies the migrations): a SQLite file `name` in
    `work`, or a new database on `server`."""
    if backend == "sqlite":
        return f"sqlite:///{work / f'{name}.db'}"
    assert server is not None, "a PostgreSQL store needs the private server (common.postgres)"
    return server.url_of(await server.create_database())
