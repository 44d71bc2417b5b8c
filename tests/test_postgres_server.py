"""The session's private PostgreSQL server (tests/postgres_server.py), the per-test databases, and
the PostgreSQL schema (store/migrations/postgresql) against SQLite's."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from conftest import wait_until
from contactreports.store.database import Database
from postgres_server import PostgresServer

SHARED_PORT = 5432
# Tables SQLite makes for itself, and the one its migrator (not a migration) makes.
NOT_FROM_MIGRATIONS = {"sqlite_sequence", "schema_migrations"}


async def test_the_server_is_private_and_answers(postgres_server: PostgresServer) -> None:
    connection = await asyncpg.connect(postgres_server.url)
    try:
        version = await connection.fetchval("SELECT version()")
        port = await connection.fetchval("SHOW port")
        data_directory = Path(await connection.fetchval("SHOW data_directory"))
        fsync = await connection.fetchval("SHOW fsync")
        is_superuser = await connection.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await connection.close()
    assert version.startswith("PostgreSQL ")
    assert int(port) == postgres_server.port != SHARED_PORT
    assert data_directory == postgres_server.data
    assert data_directory.is_relative_to(postgres_server.root)
    assert fsync == "off"
    assert is_superuser is True


# Run twice: had both runs one database, the second would find the first's table.
@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_has_an_empty_database_of_its_own(
    postgres_server: PostgresServer, postgres_url: str, run: int
) -> None:
    assert postgres_url != postgres_server.url
    connection = await asyncpg.connect(postgres_url)
    try:
        tables = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        await connection.execute("CREATE TABLE left_by_a_test (run INTEGER)")
    finally:
        await connection.close()
    assert tables == []


async def test_a_dropped_database_is_gone(postgres_server: PostgresServer) -> None:
    name = await postgres_server.create_database()
    await postgres_server.drop_database(name)
    connection = await asyncpg.connect(postgres_server.admin_url)
    try:
        found = await connection.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
    finally:
        await connection.close()
    assert found == 0


async def test_a_restart_after_a_crash_keeps_what_was_committed(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    connection = await asyncpg.connect(postgres_url)
    await connection.execute("CREATE TABLE kept (n INTEGER)")
    await connection.execute("INSERT INTO kept VALUES (7)")
    await connection.close()
    postgres_server.stop("immediate")
    try:
        assert not postgres_server.is_running()
        with pytest.raises((OSError, asyncpg.PostgresConnectionError)):
            await asyncpg.connect(postgres_url)
    finally:
        postgres_server.start()
    connection = await asyncpg.connect(postgres_url)
    try:
        assert await connection.fetch("SELECT n FROM kept") == [(7,)]
    finally:
        await connection.close()


def sqlite_schema(path: Path) -> dict[str, set[str] | dict[str, list[str]]]:
    """Tables (their column names), index and trigger names of a SQLite store's file."""
    with sqlite3.connect(path) as connection:
        objects = connection.execute("SELECT type, name FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        tables = sorted(name for kind, name in objects if kind == "table" and name not in NOT_FROM_MIGRATIONS)
        return {
            "columns": {
                table: sorted(row[1] for row in connection.execute(f"PRAGMA table_info({table})")) for table in tables
            },
            "indexes": {name for kind, name in objects if kind == "index"},
            "triggers": {name for kind, name in objects if kind == "trigger"},
        }


async def postgres_schema(connection: asyncpg.Connection) -> dict[str, set[str] | dict[str, list[str]]]:
    """The same of a PostgreSQL database; indexes made for a key or UNIQUE constraint left out, as
    SQLite's are (they have no SQL)."""
    columns = await connection.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, column_name"
    )
    indexes = await connection.fetch(
        "SELECT indexrelid::regclass::text AS name FROM pg_index"
        " WHERE indexrelid::regclass::text NOT IN (SELECT conname FROM pg_constraint)"
        " AND indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)"
    )
    triggers = await connection.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    by_table: dict[str, list[str]] = {}
    for row in columns:
        if row["table_name"] in NOT_FROM_MIGRATIONS:
            continue
        by_table.setdefault(row["table_name"], []).append(row["column_name"])
    return {
        "columns": by_table,
        "indexes": {row["name"] for row in indexes},
        "triggers": {row["tgname"] for row in triggers},
    }


@pytest.fixture
async def schema(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, with the PostgreSQL migrations applied."""
    await (await Database.open(postgres_url)).close()
    connection = await asyncpg.connect(postgres_url)
    try:
        yield connection
    finally:
        await connection.close()


async def test_the_postgresql_schema_has_sqlite_s_tables_columns_indexes_and_trigger(
    schema: asyncpg.Connection, tmp_path: Path
) -> None:
    sqlite_file = tmp_path / "contactreports.db"
    await (await Database.open(f"sqlite:///{sqlite_file}")).close()
    expected = sqlite_schema(sqlite_file)
    assert await postgres_schema(schema) == expected
    assert "reports_one_active_per_account" in expected["indexes"]
    assert expected["triggers"] == {"api_keys_keep_one_full_access"}


async def test_the_postgresql_schema_makes_secrets_as_sqlite_does(schema: asyncpg.Connection) -> None:
    rows = await schema.fetch("SELECT key, value FROM meta ORDER BY key")
    assert [row["key"] for row in rows] == ["cursor_secret", "session_secret"]
    secrets = [bytes.fromhex(row["value"]) for row in rows]
    assert [len(secret) for secret in secrets] == [32, 32]
    assert [row["value"] for row in rows] == [secret.hex() for secret in secrets]  # lower-case hex
    assert secrets[0] != secrets[1]
    assert [await schema.fetchval("SELECT nextval('event_seq')") for _ in range(2)] == [1, 2]


async def add_account_with_keys(connection: asyncpg.Connection, *keys: tuple[str, bool]) -> int:
    """An account with API keys named `id` (read-only or not); its id."""
    account_id = await connection.fetchval("INSERT INTO accounts (name, created_at) VALUES ('a', 0) RETURNING id")
    await connection.executemany(
        "INSERT INTO api_keys (id, account_id, name, read_only, secret_hash, created_at)"
        " VALUES ($1, $2, $1, $3, $1, 0)",
        [(key_id, account_id, read_only) for key_id, read_only in keys],
    )
    return account_id


async def key_ids(connection: asyncpg.Connection, account_id: int) -> list[str]:
    rows = await connection.fetch("SELECT id FROM api_keys WHERE account_id = $1 ORDER BY id", account_id)
    return [row["id"] for row in rows]


async def test_an_account_keeps_its_last_full_access_key(schema: asyncpg.Connection) -> None:
    account_id = await add_account_with_keys(schema, ("full-1", False), ("full-2", False), ("read", True))
    await schema.execute("DELETE FROM api_keys WHERE id = 'full-1'")
    with pytest.raises(asyncpg.RestrictViolationError, match="the last full-access key of an account"):
        await schema.execute("DELETE FROM api_keys WHERE id = 'full-2'")
    await schema.execute("DELETE FROM api_keys WHERE id = 'read'")
    assert await key_ids(schema, account_id) == ["full-2"]


async def test_two_deletes_at_once_leave_the_last_full_access_key(
    schema: asyncpg.Connection, postgres_url: str
) -> None:
    """Each transaction, alone, would see the other's key still there; the second must wait for the first."""
    account_id = await add_account_with_keys(schema, ("full-1", False), ("full-2", False))
    first, second = await asyncio.gather(asyncpg.connect(postgres_url), asyncpg.connect(postgres_url))
    try:
        first_done = first.transaction()
        await first_done.start()
        await first.execute("DELETE FROM api_keys WHERE id = 'full-1'")
        second_delete = asyncio.create_task(second.execute("DELETE FROM api_keys WHERE id = 'full-2'"))

        async def second_waits_for_a_lock() -> bool:
            wait = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"
            return await schema.fetchval(wait, second.get_server_pid()) == "Lock"

        await wait_until(second_waits_for_a_lock)
        await first_done.commit()
        with pytest.raises(asyncpg.RestrictViolationError, match="the last full-access key of an account"):
            await second_delete
    finally:
        await asyncio.gather(first.close(), second.close())
    assert await key_ids(schema, account_id) == ["full-2"]
