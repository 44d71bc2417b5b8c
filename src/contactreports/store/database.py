"""The store's one seam: what every backend provides, and `Database.open`, which picks one.

Store modules (`store/reports.py`, `store/runs.py`, ...) write each operation once, against
`Database` and `Connection`; a backend module holds what differs between database engines:
connections, transactions, placeholders, error mapping, migrations, and the few statements whose
text differs (`Dialect`). Backends: `store/sqlite.py` (aiosqlite, the embedded default) and
`store/postgresql.py` (asyncpg).

SQL names its parameters (`:account_id`) and takes them as a mapping; rows are read by column
name (`row["status"]`), never by position.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any, Protocol, TypeVar

import msgspec

from contactreports.config import Settings, is_postgresql

DEFAULT_BUSY_TIMEOUT_MS = 10_000

T = TypeVar("T")
Params = Mapping[str, Any]
NO_PARAMS: Params = {}


class Row(Protocol):
    """A result row, read by column name (sqlite3.Row and asyncpg.Record both are)."""

    def __getitem__(self, key: str, /) -> Any: ...


class StoreError(Exception):
    """Base of the errors every backend raises in its own terms' place."""


class TryAgain(StoreError):
    """A passing condition, not the request's fault: nothing was done, and the same call may
    succeed in a moment."""


class StoreBusy(TryAgain):
    """The database could not take the write in time (another writer held it)."""


class StoreUnavailable(TryAgain):
    """The database cannot be reached or is not accepting work (stopped, restarting)."""


class ConstraintViolation(StoreError):
    """A write broke a rule the database enforces (a unique key, a trigger's check); the message
    is the database's own."""


class UniqueViolation(ConstraintViolation):
    """A write would have made a second row with the same unique key."""


class Dialect(msgspec.Struct, frozen=True, kw_only=True):
    """Statement text that differs between backends; each backend module defines its own."""

    name: str
    # `column` is one of the list bound as `param`; the backend binds the list as it needs.
    any_of: Callable[[str, str], str]
    # A table of one column, `value`: the texts of the list bound as `param`.
    each_of: Callable[[str], str]
    # Appended to a SELECT whose rows the transaction will write after reading: locks them.
    for_update: str
    # Appended to a SELECT whose rows must not change before the transaction ends.
    for_share: str
    # Whether `a UNION ALL b ORDER BY key LIMIT n` needs `ORDER BY key LIMIT n` on each arm too, for
    # the planner to merge the arms' index scans and stop after n rows. PostgreSQL does (without
    # them it reads every matching row and sorts); SQLite merges as it is, and with them sorts.
    limit_each_union_arm: bool


class Connection(ABC):
    """Statements on one connection: in a transaction (`Database.transaction()`), or each its
    own (`Database` itself reads so)."""

    dialect: Dialect

    @abstractmethod
    async def execute(self, sql: str, params: Params = NO_PARAMS) -> int:
        """Run a statement; for an INSERT, UPDATE or DELETE, returns how many rows it changed (what it
        returns for other statements differs between backends)."""

    @abstractmethod
    async def execute_many(self, sql: str, rows: Iterable[Params]) -> None: ...

    @abstractmethod
    async def copy_rows(self, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]) -> None:
        """Insert `records` (values in the order of `columns`) into `table` as one bulk load:
        PostgreSQL's COPY, SQLite's prepared INSERT run for each record. Plain inserts: no
        ON CONFLICT, no RETURNING; a broken constraint fails the whole load."""

    @abstractmethod
    async def fetch(self, sql: str, params: Params = NO_PARAMS) -> list[Row]: ...

    async def fetch_one(self, sql: str, params: Params = NO_PARAMS) -> Row | None:
        rows = await self.fetch(sql, params)
        return rows[0] if rows else None

    async def fetch_value(self, sql: str, params: Params = NO_PARAMS) -> Any:
        """The first column of the first row (None without rows)."""
        row = await self.fetch_one(sql, params)
        return None if row is None else row[0]

    @abstractmethod
    async def fetch_any_of(self, sql: str, params: Params, param: str, values: Sequence[Any]) -> list[Row]:
        """Rows of `sql`, where `{any_of}` stands for "`column` is one of `values`" (see
        Dialect.any_of), bound as `param`: SQLite in IN lists of a few hundred (its limit on
        parameters), PostgreSQL as one array."""

    @abstractmethod
    async def next_values(self, sequence: str, count: int) -> Sequence[int]:
        """`count` new numbers of the named sequence, ascending (gaps allowed), never handed out twice."""


class Database(Connection):
    """A store: reads outside transactions (each statement sees what is committed when it runs),
    `transaction()` for writes."""

    @staticmethod
    async def open(
        database_url: str,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        *,
        bulk: bool = False,
        options: PoolOptions | None = None,
    ) -> Database:
        """Open the store `database_url` names (`sqlite:///path` or `postgresql://...`), applying
        pending migrations. `bulk`: for a bulk load (`contactreports import`)."""
        from contactreports.store import postgresql, sqlite  # the backends import this module

        if is_postgresql(database_url):
            return await postgresql.PostgresDatabase.open(database_url, options or PoolOptions())
        return await sqlite.SQLiteDatabase.open(database_url, busy_timeout_ms, bulk=bulk)

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Connection]:
        """A transaction for writes: committed when the block ends, rolled back if it raises.
        Raises StoreBusy when it could not start in time."""

    @abstractmethod
    async def lookup(self, sql: str, params: Params) -> Row | None:
        """The one row a query by a unique key finds: the hot point lookups (every request's API
        key, a polled report), which a backend may answer by a faster path."""

    @abstractmethod
    async def read_snapshot(self, read: Callable[[Connection], Awaitable[T]]) -> T:
        """`read(connection)` on a connection of its own, its statements seeing one snapshot: a long
        read (a 1M-row report's summary) that would otherwise hold up the others."""

    @abstractmethod
    async def ping(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...


async def open_database(settings: Settings, *, bulk: bool = False) -> Database:
    """The store the settings name, opened as they say."""
    options = PoolOptions(
        pool_size=settings.database_pool_size,
        statement_timeout_ms=settings.database_statement_timeout_ms,
        statement_cache_size=settings.database_statement_cache_size,
    )
    return await Database.open(settings.database_url, settings.busy_timeout_ms, bulk=bulk, options=options)


class PoolOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How a server backend (PostgreSQL) connects: ignored by SQLite."""

    pool_size: int = 10
    # A statement running longer is cancelled (and its transaction rolled back); 0 leaves it to the
    # server's setting (behind PgBouncer, which refuses it as a connection's startup parameter).
    statement_timeout_ms: int = 30_000
    # Prepared statements cached per connection; 0 behind PgBouncer in transaction mode, where a
    # connection's next transaction may run on another server connection.
    statement_cache_size: int = 100


def migration_files(backend: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of `backend`'s migrations, in order. Both backends number them
    alike: version N is the same schema change on each."""
    folder = resources.files("contactreports.store") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
