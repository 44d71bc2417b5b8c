"""The SQLite backend (aiosqlite): one file, one writer at a time; the embedded default."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from contactreports.config import sqlite_path
from contactreports.store.database import (
    NO_PARAMS,
    Connection,
    ConstraintViolation,
    Database,
    Dialect,
    Params,
    Row,
    StoreBusy,
    T,
    UniqueViolation,
    migration_files,
)

# SQLite allows 32,766 bound parameters; IN lists stay well below it.
IN_CHUNK = 500
PRAGMAS = ("PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON")
# A bulk load's writer caches up to 256 MB of pages instead of SQLite's default 2 MB: a
# transaction of 100,000 events touches most pages of a 1M-event store, which then stay cached
# from one transaction to the next (bench/ingest.py).
BULK_CACHE_KIB = 256 * 1024


def _any_of(column: str, param: str) -> str:
    # `fetch_any_of` replaces {param} with the chunk's own placeholders.
    return f"{column} IN ({{{param}}})"


def _each_of(param: str) -> str:
    return f"json_each(:{param})"  # a list is bound as JSON text (`_bindable`)


# No row locks: a write transaction holds the whole database (BEGIN IMMEDIATE).
SQLITE = Dialect(
    name="sqlite", any_of=_any_of, each_of=_each_of, for_share="", for_update="", limit_each_union_arm=False
)


def _mapped(error: sqlite3.Error) -> Exception:
    """SQLite's error as the store's: a busy database, a broken constraint, or itself."""
    message = str(error)
    if isinstance(error, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
        return StoreBusy(message)
    if isinstance(error, sqlite3.IntegrityError):
        return UniqueViolation(message) if message.startswith("UNIQUE") else ConstraintViolation(message)
    return error


def _bindable(params: Params) -> Params:
    """`params` as sqlite3 binds them: a list as a JSON array (what `json_each` reads)."""
    if not any(isinstance(value, list) for value in params.values()):
        return params
    return {name: json.dumps(value) if isinstance(value, list) else value for name, value in params.items()}


@contextmanager
def _translated() -> Iterator[None]:
    """SQLite's errors raised in the block, as the store's."""
    try:
        yield
    except sqlite3.Error as error:
        raise _mapped(error) from error


class SQLiteConnection(Connection):
    dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection):
        self._conn = conn

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        with _translated():
            cursor = await self._conn.execute(sql, _bindable(params))
        return cursor.rowcount

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        with _translated():
            await self._conn.executemany(sql, rows)

    async def copy_rows(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        placeholders = ", ".join("?" * len(columns))
        with _translated():
            await self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", records)

    async def fetch(self, sql: str, params: Params = NO_PARAMS) -> list[Row]:
        with _translated():
            return list(await self._conn.execute_fetchall(sql, _bindable(params)))

    async def fetch_any_of(self, sql: str, params: Params, param: str, values: Sequence[Any]) -> list[Row]:
        rows: list[Row] = []
        for start in range(0, len(values), IN_CHUNK):
            chunk = values[start : start + IN_CHUNK]
            names = [f"{param}_{n}" for n in range(len(chunk))]
            text = sql.replace(f"{{{param}}}", ", ".join(f":{name}" for name in names))
            rows += await self.fetch(text, {**params, **dict(zip(names, chunk, strict=True))})
        return rows

    async def next_values(self, sequence: str, count: int) -> Sequence[int]:
        # A counter in `meta`: one writer at a time, so no two transactions take the same numbers.
        last = await self.fetch_value(
            "UPDATE meta SET value = CAST(value AS INTEGER) + :count WHERE key = :sequence"
            " RETURNING CAST(value AS INTEGER)",
            {"count": count, "sequence": sequence},
        )
        return range(last - count + 1, last + 1)


class SQLiteDatabase(SQLiteConnection, Database):
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
        super().__init__(reader)
        self._path = path
        self._writer = SQLiteConnection(writer)
        self._writer_conn = writer
        self._write_lock = asyncio.Lock()
        self._lookups = lookups

    @classmethod
    async def open(  # type: ignore[override]
        cls, database_url: str, busy_timeout_ms: int, *, bulk: bool = False
    ) -> SQLiteDatabase:
        path = sqlite_path(database_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        opened = [writer := await _connect(path, busy_timeout_ms)]
        try:
            if bulk:
                await writer.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
            await _migrate(writer)
            opened.append(reader := await _connect(path, busy_timeout_ms))
            lookups = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
            lookups.row_factory = sqlite3.Row
            lookups.execute("PRAGMA query_only = ON")
        except BaseException:
            # An aiosqlite connection left open keeps its thread, and so the process, alive.
            for connection in reversed(opened):
                await connection.close()
            raise
        return cls(path, writer, reader, lookups)

    async def close(self) -> None:
        self._lookups.close()
        await self._conn.close()
        await self._writer_conn.close()

    async def lookup(self, sql: str, params: Params) -> Row | None:
        """Read on the calling thread: SQLite answers a lookup by an indexed unique key in
        microseconds, less than handing the statement to aiosqlite's thread and back costs, which
        also waits for the GIL under load (bench/polling.py). A WAL reader never waits for a
        writer; it gets SQLITE_BUSY only while a connection recovers or removes the WAL, which
        happens only when no other connection is open, and this one stays open."""
        # fetchall(): the statement runs to its end, so no read transaction stays open (one
        # would pin this connection to an old snapshot, and a polled report would never change).
        rows = self._lookups.execute(sql, params).fetchall()
        return rows[0] if rows else None

    async def read_snapshot(self, read: Callable[[Connection], Awaitable[T]]) -> T:
        connection = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            await connection.execute("PRAGMA query_only = ON")
            await connection.execute("BEGIN")
            return await read(SQLiteConnection(connection))
        finally:
            await connection.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer_conn.rollback()
                raise
            await self._writer_conn.commit()

    async def ping(self) -> None:
        await self.fetch("SELECT 1")


async def _connect(path: Path, busy_timeout_ms: int) -> aiosqlite.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. The timeout is SQLite's busy
    # timeout, set before the first statement: even switching to WAL waits for a process
    # opening the file at the same time.
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    conn.row_factory = sqlite3.Row
    try:
        await _switch_to_wal(conn, busy_timeout_ms)
        for pragma in PRAGMAS:
            await conn.execute(pragma)
    except BaseException:
        await conn.close()  # its thread would keep the process alive
        raise
    return conn


async def _switch_to_wal(conn: aiosqlite.Connection, busy_timeout_ms: int) -> None:
    """Put a new database file in WAL mode. Connections doing so at once (processes starting
    together on a new file) may get "database is locked" at once, without the busy timeout: SQLite
    does not wait where waiting could deadlock. The first to get through switches it for all."""
    deadline = asyncio.get_running_loop().time() + busy_timeout_ms / 1000
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.01)


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
        for version, name, script in migration_files("sqlite"):
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
