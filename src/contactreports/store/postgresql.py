"""The PostgreSQL backend (asyncpg): a shared store for many API hosts and workers.

Statements are written with named parameters (`:account_id`), as SQLite takes them; asyncpg
takes numbered ones (`$1`), so each statement's text is rewritten once and cached.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from contactreports.store.database import (
    NO_PARAMS,
    Connection,
    ConstraintViolation,
    Database,
    Dialect,
    Params,
    PoolOptions,
    Row,
    StoreBusy,
    StoreUnavailable,
    T,
    UniqueViolation,
    migration_files,
)

# Held while migrating, so processes starting together apply each migration once (any constant
# that no other application on the server uses; this is "contactreports" in ASCII, truncated).
MIGRATION_LOCK = 0x636F6E7461637472
# `:name`, not `::type` (a cast) nor a time's `12:30` inside a literal.
_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def _any_of(column: str, param: str) -> str:
    return f"{column} = ANY(:{param})"


def _each_of(param: str) -> str:
    return f"unnest(CAST(:{param} AS TEXT[])) AS each_of(value)"


POSTGRESQL = Dialect(
    name="postgresql",
    any_of=_any_of,
    each_of=_each_of,
    for_share=" FOR SHARE",
    for_update=" FOR UPDATE",
    limit_each_union_arm=True,
)


@lru_cache(maxsize=1024)
def _numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with `$1, $2, ...` for its named parameters, and the names in that order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return _PARAMETER.sub(number, sql), tuple(names)


def _bound(sql: str, params: Params) -> tuple[str, list[Any]]:
    text, names = _numbered(sql)
    return text, [params[name] for name in names]


# Errors that say the server went away or is not taking work: StoreUnavailable (a 503, a retry).
_UNAVAILABLE = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)
# Errors of a transaction that lost to a concurrent one, or waited past the statement timeout:
# StoreBusy, to be tried again.
_BUSY = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
)


def _mapped(error: Exception) -> Exception:
    """asyncpg's error as the store's, or itself."""
    if isinstance(error, asyncpg.UniqueViolationError):
        return UniqueViolation(str(error))
    if isinstance(error, asyncpg.IntegrityConstraintViolationError | asyncpg.RaiseError):
        return ConstraintViolation(str(error))
    if isinstance(error, _BUSY):
        return StoreBusy(str(error))
    if isinstance(error, _UNAVAILABLE):
        return StoreUnavailable(str(error) or type(error).__name__)
    return error


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    try:
        yield
    except (asyncpg.PostgresError, *_UNAVAILABLE) as error:
        raise _mapped(error) from error


class PostgresConnection(Connection):
    dialect = POSTGRESQL

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool):
        self._conn = conn

    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        text, args = _bound(sql, params)
        async with _translated():
            status = await self._conn.execute(text, *args)
        # The command tag: "INSERT 0 <n>", "UPDATE <n>", "DELETE <n>"; the count is its last word.
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None:
        text, names = _numbered(sql)
        args = [[row[name] for name in names] for row in rows]
        if args:
            async with _translated():
                await self._conn.executemany(text, args)

    async def copy_rows(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        # Straight into the table: staging in a temporary table first, then one INSERT ... SELECT,
        # writes every row twice and adds a table to the catalogue a batch, and was slower.
        if records:
            async with _translated():
                await self._conn.copy_records_to_table(table, records=records, columns=list(columns))

    async def fetch(self, sql: str, params: Params = NO_PARAMS) -> list[Row]:
        text, args = _bound(sql, params)
        async with _translated():
            return await self._conn.fetch(text, *args)

    async def fetch_any_of(self, sql: str, params: Params, param: str, values: Sequence[Any]) -> list[Row]:
        return await self.fetch(sql, {**params, param: list(values)})

    async def next_values(self, sequence: str, count: int) -> Sequence[int]:
        rows = await self.fetch(
            "SELECT nextval(:sequence) AS value FROM generate_series(1, :count)", {"sequence": sequence, "count": count}
        )
        return sorted(row["value"] for row in rows)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection handed back, besides rolling back a transaction left
    open (asyncpg always does that): nothing. asyncpg's default sends
    `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`, a round trip on every
    release, and the store never leaves session state behind: no SET, LISTEN, session advisory
    lock (migrations take a transaction's) or held cursor, as a pooler in transaction mode
    (PgBouncer) requires anyway."""


class PostgresDatabase(PostgresConnection, Database):
    """A pool of connections; reads outside transactions run on any of them, each statement on its
    own (READ COMMITTED)."""

    def __init__(self, pool: asyncpg.Pool):
        super().__init__(pool)
        self._pool = pool

    @classmethod
    async def open(cls, database_url: str, options: PoolOptions) -> PostgresDatabase:  # type: ignore[override]
        async with _translated():
            pool = await asyncpg.create_pool(
                database_url,
                min_size=1,
                max_size=options.pool_size,
                statement_cache_size=options.statement_cache_size,
                reset=_keep_session,
                # Sent as a startup parameter, which PgBouncer refuses: 0 sends none (the server's holds).
                server_settings={"statement_timeout": str(options.statement_timeout_ms)}
                if options.statement_timeout_ms
                else {},
            )
        try:
            await _migrate(pool)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    async def lookup(self, sql: str, params: Params) -> Row | None:
        return await self.fetch_one(sql, params)

    async def read_snapshot(self, read: Callable[[Connection], Awaitable[T]]) -> T:
        async with (
            _translated(),
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await read(PostgresConnection(conn))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with _translated(), self._pool.acquire() as conn, conn.transaction():
            yield PostgresConnection(conn)

    async def ping(self) -> None:
        await self.fetch("SELECT 1")


async def _migrate(pool: asyncpg.Pool) -> None:
    """Apply pending migrations in one transaction (all or none), under an advisory lock: processes
    starting together wait for the first, then find its migrations applied."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, script in migration_files("postgresql"):
            if version not in applied:
                await conn.execute(script)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, now()::text)",
                    version,
                    name,
                )
