"""Connections, transactions and schema migrations for the SQLite store."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TypeVar

import aiosqlite

from contactreports.config import sqlite_path

DEFAULT_BUSY_TIMEOUT_MS = 10_000
# SQLite allows 32,766 bound parameters; IN lists stay well below it.
IN_CHUNK = 500
PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON")
# A bulk load's writer caches up to 256 MB of pages instead of SQLite's default 2 MB: a
# transaction of 100,000 events touches most pages of a 1M-event store, which then stay cached
# from one transaction to the next (plain sqlite3 on this layout, 1M events: 38,000 against 31,000/s).
BULK_CACHE_KIB = 256 * 1024


T = TypeVar("T")


class StoreBusy(Exception):
    """Another process held the database's write lock for longer than the busy timeout: try again."""


class Database:
    """One writer connection (serialised by a lock), one reader connection, and a connection
    for point lookups.

    Every write goes through `transaction()`, which opens with BEGIN IMMEDIATE: a
    DEFERRED read-then-write transaction fails at once with "database is locked" under a
    concurrent writer, whatever the busy timeout. Reads use the reader connection in
    autocommit mode, so each statement sees the latest committed state (WAL).
    """

    def __init__(
        self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection, lookups: sqlite3.Connection
    ):
        self.reader = reader
        self._path = path
        self._writer = writer
        self._write_lock = asyncio.Lock()
        self._lookups = lookups

    @classmethod
    async def open(
        cls, database_url: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, *, bulk: bool = False
    ) -> Database:
        """`bulk`: for a bulk load (`contactreports import`), whose writer gets a larger page cache."""
        path = sqlite_path(database_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        opened = [writer := await _connect(path, busy_timeout_ms)]
        try:
            if bulk:
                await writer.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
            await _migrate(writer)
            opened.append(reader := await _connect(path, busy_timeout_ms))
            lookups = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
            lookups.execute("PRAGMA query_only = ON")
        except BaseException:
            # An aiosqlite connection left open keeps its thread, and so the process, alive.
            for connection in reversed(opened):
                await connection.close()
            raise
        return cls(path, writer, reader, lookups)

    async def close(self) -> None:
        self._lookups.close()
        await self.reader.close()
        await self._writer.close()

    def lookup(self, sql: str, parameters: tuple) -> tuple | None:
        """The one row a query by a unique key finds (or None), read on the calling thread.

        Only for lookups by an indexed unique key (every request's API key, a polled report):
        SQLite answers one in microseconds, less than handing the statement to aiosqlite's
        thread and back costs, which also waits for the GIL under load (bench/polling.py). A WAL
        reader never waits for a writer; it gets SQLITE_BUSY only while a connection recovers
        or removes the WAL, which happens only when no other connection is open, and this one
        stays open. Reads of more rows than one go through `reader`.
        """
        # fetchall(): the statement runs to its end, so no read transaction stays open (one
        # would pin this connection to an old snapshot, and a polled report would never change).
        rows = self._lookups.execute(sql, parameters).fetchall()
        return rows[0] if rows else None

    async def read_apart(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """`read(connection)` in one read transaction, on a connection of its own, in a thread.

        For a read that takes long (a 1M-row report's summary reads every row, about a second):
        on `reader` it would hold up every other read of this process. The one transaction keeps
        its statements to one snapshot of the database.
        """

        def run() -> T:
            connection = sqlite3.connect(self._path, isolation_level=None)
            try:
                connection.execute("PRAGMA query_only = ON")
                connection.execute("BEGIN")
                return read(connection)
            finally:
                connection.close()

        return await asyncio.to_thread(run)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction; raises StoreBusy when the write lock could not be had in time."""
        async with self._write_lock:
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                raise _busy_or(error) from error
            try:
                yield self._writer
            except BaseException as error:
                await self._writer.rollback()
                if isinstance(error, sqlite3.OperationalError):
                    raise _busy_or(error) from error
                raise
            await self._writer.commit()

    async def ping(self) -> None:
        await self.reader.execute_fetchall("SELECT 1")


def _busy_or(error: sqlite3.OperationalError) -> Exception:
    return StoreBusy(str(error)) if "locked" in str(error) or "busy" in str(error) else error


async def _connect(path: Path, busy_timeout_ms: int) -> aiosqlite.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. The timeout is SQLite's busy
    # timeout, set before the first statement: even switching to WAL waits for a process
    # opening the file at the same time.
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    for pragma in PRAGMAS:
        await conn.execute(pragma)
    return conn


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("contactreports.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    leftover = "".join(line for line in current.splitlines() if not line.strip().startswith("--"))
    if leftover.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {leftover!r}")
    return statements


async def _migrate(conn: aiosqlite.Connection) -> None:
    """Apply pending migrations, each in its own transaction.

    API and worker processes may start together: BEGIN IMMEDIATE makes the second wait,
    and it then finds the migrations applied.

    Foreign keys are off meanwhile: SQLite changes a table's columns by making the table anew
    and dropping the old one, which, with them on, counts as deleting every row another table
    refers to (sqlite.org/lang_altertable.html). As SQLite advises, each migration must then
    leave every reference whole (`PRAGMA foreign_key_check`) before it commits.
    """
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    await conn.execute("PRAGMA foreign_keys = OFF")  # only outside a transaction
    try:
        for version, name, script in _migration_files():
            await _apply(conn, version, name, script)
    finally:
        await conn.execute("PRAGMA foreign_keys = ON")


async def _apply(conn: aiosqlite.Connection, version: int, name: str, script: str) -> None:
    """Apply one migration unless it was; a migration that leaves a broken reference is undone."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = await conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,))
        if await cursor.fetchone() is None:
            for statement in _statements(script):
                await conn.execute(statement)
            if broken := await conn.execute_fetchall("PRAGMA foreign_key_check"):
                raise RuntimeError(f"migration {name} leaves rows referring to nothing: {list(broken)[:5]}")
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, datetime('now'))",
                (version, name),
            )
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()


async def select_in(conn: aiosqlite.Connection, sql: str, leading: tuple, values: Sequence) -> list[tuple]:
    """Run `sql`, whose `{placeholders}` is an IN list, over `values` in chunks; all rows found."""
    rows: list[tuple] = []
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        rows += await conn.execute_fetchall(sql.format(placeholders=", ".join("?" * len(chunk))), (*leading, *chunk))
    return rows
