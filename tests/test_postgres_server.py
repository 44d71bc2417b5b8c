"""The session's private PostgreSQL server (tests/postgres_server.py) and the per-test databases."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from postgres_server import PostgresServer

SHARED_PORT = 5432


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
