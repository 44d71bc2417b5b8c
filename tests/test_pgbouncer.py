"""The service through PgBouncer in transaction mode, as the README's "Running at scale" advises.

A private PgBouncer (Debian's `pgbouncer` package; never a system service) stands in front of
this module's own PostgreSQL server with 5 server connections per database, fewer than the API's
and the worker's pools hold together: each of their transactions may run on any server
connection. The processes run with CONTACTREPORTS_DATABASE_STATEMENT_CACHE_SIZE=0; the default
cache's prepared statements break there, which one test shows; and PgBouncer refuses the
statement timeout the store sends as it connects, unless told to ignore it (another test).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from conftest import DEADLINE_SECONDS, Process, service_env, start_api
from contactreports.cli.embedded_redis import free_port
from contactreports.store.accounts import account_for_key, create_account
from contactreports.store.database import Database, PoolOptions, StoreBusy, migration_files
from helpers import ALL_EMAIL, all_rows, create_report, ingest, oracle, put_campaign, wait_done
from postgres_server import SERVER_USER, PostgresServer

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="no `pgbouncer` binary on PATH or in /usr/sbin: install Debian's `pgbouncer` package"
)

# Server connections per database: fewer than one process's pool (10), so they are shared.
SERVER_CONNECTIONS = 5
TRANSACTION_MODE = {"pool_mode": "transaction", "default_pool_size": str(SERVER_CONNECTIONS), "max_client_conn": "200"}
# A queue of this module's own: the session's workers read other databases.
QUEUE = "contactreports:pgbouncer"
# What the README says to set behind PgBouncer: no statement cache, and the statement timeout left
# to the server (PgBouncer refuses it as a startup parameter).
BEHIND_PGBOUNCER = {"database_statement_cache_size": 0, "database_statement_timeout_ms": 0}
CONTACT = "ann@example.com"
CAMPAIGNS = {
    "spring": {"name": "Spring sale", "archived": False},
    "winter": {"name": "Winter sale", "archived": True},
}
WINDOW = {"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
ACCOUNTS = 4
EVENTS_PER_ACCOUNT = 1_200


class PgBouncer:
    """One pgbouncer process in a temporary folder, in front of `server`'s every database.

    pgbouncer refuses to run as root, so as root it runs as the PostgreSQL package's user, as the
    private server does; `trust` matches that server's authentication.
    """

    def __init__(self, server: PostgresServer, settings: dict[str, str]):
        self.server = server
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="contactreports-pgbouncer-"))
        self.log = self.root / "pgbouncer.log"
        (self.root / "users.txt").write_text(f'"{server.user}" ""\n')
        ini = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(self.root / "users.txt"),
            **settings,
        }
        (self.root / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={server.port}\n[pgbouncer]\n"
            + "".join(f"{name} = {value}\n" for name, value in ini.items())
        )
        launcher = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
        if launcher:
            shutil.chown(self.root, SERVER_USER)
            for path in self.root.iterdir():
                shutil.chown(path, SERVER_USER)
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(
                [*launcher, str(PGBOUNCER), str(self.root / "pgbouncer.ini")],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        self._wait_listening()

    def url_of(self, database: str) -> str:
        return f"postgresql://{self.server.user}@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        self.popen.terminate()
        self.popen.wait(10)
        shutil.rmtree(self.root)

    def _wait_listening(self) -> None:
        # Its own word, not a connection that succeeds: another process may have taken the port
        # between free_port() and pgbouncer's bind, and pgbouncer then exits.
        listening = f"listening on 127.0.0.1:{self.port}"
        deadline = time.monotonic() + DEADLINE_SECONDS
        while listening not in self.log.read_text():
            if self.popen.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.popen.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer not listening within {DEADLINE_SECONDS} s:\n{self.log.read_text()}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def bouncer(postgres: PostgresServer) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(postgres, TRANSACTION_MODE)
    yield bouncer
    bouncer.close()


@pytest.fixture
async def bounced_url(postgres: PostgresServer, bouncer: PgBouncer) -> AsyncIterator[str]:
    """A new empty database of the test's own, reached through PgBouncer."""
    name = await postgres.create_database()
    yield bouncer.url_of(name)
    await postgres.drop_database(name)


@dataclass
class Service:
    api: str
    env: dict[str, str]
    worker: Process


@pytest.fixture
def service(bounced_url: str, redis_url: str, logs: Path) -> Iterator[Service]:
    """The API and a worker, both through PgBouncer; the API migrates the empty database as it starts."""
    env = service_env(bounced_url, redis_url, queue_name=QUEUE, chunk_rows=100, **BEHIND_PGBOUNCER)
    api, url = start_api(env, logs, "pgbouncer-api")
    worker = Process(["worker"], env, logs / "pgbouncer-worker.log")
    yield Service(url, env, worker)
    worker.stop()
    api.stop()


def account_events(seed: int) -> list[dict]:
    """The contact's events and another contact's, with some ids sent twice."""
    rng = random.Random(seed)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        {
            "id": f"e{seed}-{n}",
            "email": rng.choice([CONTACT, CONTACT, "bob@example.com"]),
            "action": rng.choice(ALL_EMAIL),
            "occurred_at": (first + timedelta(minutes=47 * n, milliseconds=rng.randrange(1000))).isoformat(),
            "campaign_id": rng.choice([*CAMPAIGNS, None]),
        }
        for n in range(EVENTS_PER_ACCOUNT)
    ]
    return events + rng.sample(events, 30)


@dataclass
class Contact:
    client: httpx.AsyncClient
    events: list[dict]
    search: dict[str, Any]

    def expected_rows(self) -> list[dict]:
        return oracle(self.events, CAMPAIGNS, **self.search)


def created_account(env: dict[str, str], name: str) -> str:
    """A new account's API key, made by the CLI (through PgBouncer, as `env` says)."""
    command = [sys.executable, "-m", "contactreports", "accounts", "create", name, "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["api_key"]


async def ready_contact(api: str, api_key: str, seed: int) -> Contact:
    client = httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    for campaign_id, campaign in CAMPAIGNS.items():
        await put_campaign(client, campaign_id, campaign["name"], archived=campaign["archived"])
    events = account_events(seed)
    await ingest(client, events)
    search = {"email": CONTACT, "actions": ALL_EMAIL, **WINDOW, "include_archived": seed % 2 == 0}
    return Contact(client, events, search)


async def finished_rows(contact: Contact, report_id: str) -> list[dict]:
    done = await wait_done(contact.client, report_id)
    assert done["status"] == "done", done
    return await all_rows(contact.client, report_id, limit=100)


async def test_reports_of_several_accounts_at_once_through_pgbouncer_are_exact(service: Service) -> None:
    keys = [created_account(service.env, f"bounced-{n}") for n in range(ACCOUNTS)]
    contacts = await asyncio.gather(*(ready_contact(service.api, key, n) for n, key in enumerate(keys)))
    try:
        created = await asyncio.gather(*(create_report(c.client, **c.search) for c in contacts))
        reports = [(contact, report["id"]) for contact, report in zip(contacts, created, strict=True)]
        rows = await asyncio.gather(*(finished_rows(contact, report_id) for contact, report_id in reports))
        for contact, got in zip(contacts, rows, strict=True):
            assert len(got) > 100, "a report of one chunk shares no server connection across transactions"
            assert got == contact.expected_rows()

        # Rerun, on more events: each report again at once, with the new rows.
        for n, contact in enumerate(contacts):
            later = {"email": CONTACT, "action": "email.clicked", "occurred_at": "2026-02-27T12:00:00Z", "id": f"x{n}"}
            await ingest(contact.client, [later])
            contact.events.append(later)
        reruns = [contact.client.post(f"/api/reports/{report_id}/rerun") for contact, report_id in reports]
        assert [response.status_code for response in await asyncio.gather(*reruns)] == [202] * ACCOUNTS
        rows = await asyncio.gather(*(finished_rows(contact, report_id) for contact, report_id in reports))
        for contact, got in zip(contacts, rows, strict=True):
            assert got == contact.expected_rows() and got[-1]["occurred_at"] == "2026-02-27T12:00:00.000Z"

        deletes = [contact.client.delete(f"/api/reports/{report_id}") for contact, report_id in reports]
        assert [response.status_code for response in await asyncio.gather(*deletes)] == [204] * ACCOUNTS
        for contact, report_id in reports:
            assert (await contact.client.get(f"/api/reports/{report_id}")).status_code == 404
    finally:
        for contact in contacts:
            await contact.client.aclose()
    assert service.worker.popen.poll() is None, service.worker.log.read_text()


async def test_processes_starting_at_once_migrate_through_pgbouncer_once(bounced_url: str, logs: Path) -> None:
    # The advisory lock is the transaction's own (pg_advisory_xact_lock): a session's lock would be
    # taken and released on whichever server connections PgBouncer lent.
    settings = {f"CONTACTREPORTS_{name.upper()}": str(value) for name, value in BEHIND_PGBOUNCER.items()}
    env = {**os.environ, "DATABASE_URL": bounced_url, **settings}
    migrating = [Process(["migrate"], env, logs / f"pgbouncer-migrate-{n}.log") for n in range(3)]
    try:
        exits = [process.popen.wait(DEADLINE_SECONDS) for process in migrating]
    finally:
        for process in migrating:
            process.stop()

    versions = [version for version, _, _ in migration_files("postgresql")]
    assert exits == [0, 0, 0], [process.log.read_text() for process in migrating]
    assert [p.log.read_text() for p in migrating] == [f"the database is at schema version {versions[-1]}\n"] * 3
    db = await Database.open(bounced_url, options=PoolOptions(statement_cache_size=0, statement_timeout_ms=0))
    try:
        applied = await db.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await db.close()
    assert [row["version"] for row in applied] == versions


async def key_lookups(database_url: str, cache_size: int) -> None:
    """Many API-key lookups at once over a pool of 20, more client connections than PgBouncer's 5
    server connections; each finds its key's account."""
    options = PoolOptions(pool_size=20, statement_cache_size=cache_size, statement_timeout_ms=0)
    db = await Database.open(database_url, options=options)
    try:
        accounts = [await create_account(db, f"lookup-{uuid.uuid4().hex[:8]}") for _ in range(5)] * 40
        callers = await asyncio.gather(*(account_for_key(db, api_key) for _, api_key in accounts))
        assert [caller and caller.account for caller in callers] == [account for account, _ in accounts]
    finally:
        await db.close()


async def test_without_the_statement_cache_setting_prepared_statements_fail_behind_pgbouncer(
    bounced_url: str,
) -> None:
    # asyncpg names the statements it caches per client connection; PgBouncer runs the client's
    # next transaction on another server connection, which never prepared it (or prepared another).
    with pytest.raises((asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError)):
        await key_lookups(bounced_url, cache_size=100)

    await key_lookups(bounced_url, cache_size=0)


async def test_behind_pgbouncer_the_statement_timeout_is_the_servers(
    postgres: PostgresServer, bouncer: PgBouncer
) -> None:
    name = await postgres.create_database()
    try:
        # The store's own timeout goes as a startup parameter, which PgBouncer turns away...
        with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter: statement_timeout"):
            await Database.open(bouncer.url_of(name), options=PoolOptions(statement_cache_size=0))

        # ...so behind it the setting is 0, and the server's setting for the role holds (set before
        # PgBouncer opens its first server connection to the database).
        server = await asyncpg.connect(postgres.url_of(name))
        try:
            await server.execute(f"ALTER ROLE {postgres.user} IN DATABASE \"{name}\" SET statement_timeout = '200ms'")
        finally:
            await server.close()
        options = PoolOptions(statement_cache_size=0, statement_timeout_ms=0)
        db = await Database.open(bouncer.url_of(name), options=options)
        try:
            assert await db.fetch_value("SHOW statement_timeout") == "200ms"
            with pytest.raises(StoreBusy, match="canceling statement due to statement timeout"):
                await db.execute("SELECT pg_sleep(5)")
        finally:
            await db.close()
    finally:
        await postgres.drop_database(name)
