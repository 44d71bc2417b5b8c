"""Real parts only: a private redis-server, real SQLite files, a private PostgreSQL server (started
only when a test asks for it), the API and worker as processes.

One database and one Redis serve the whole session; every test works in accounts of its
own (the product's own isolation), so tests do not see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from contactreports.cli.embedded_redis import free_port, start_redis, stop_redis
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from postgres_server import PostgresServer

DEADLINE_SECONDS = 20.0
BACKENDS = ("sqlite", "postgresql")
# A queue no worker reads: reports created through `paused_api` stay queued.
PAUSED_QUEUE = "contactreports:paused"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    stop_redis(process)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's database, on each backend in turn: every test that stores anything runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'contactreports.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.url_of(asyncio.run(server.create_database()))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("database_url")
        if backend == "postgresql" and item.get_closest_marker("sqlite_only"):
            item.add_marker(pytest.mark.skip(reason="pins SQLite's own behaviour (its file, its locks)"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL server; tests that stop it must start it again."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A new empty database of the test's own, dropped after it."""
    name = await postgres_server.create_database()
    yield postgres_server.url_of(name)
    await postgres_server.drop_database(name)


# Race and fault tests hammer one account from many clients; test_limits.py sets the low
# limits it tests, and `up` in test_cli.py runs with the defaults.
LIFTED_RATE_LIMITS = {"report_rate_limit": "1000000/minute", "ingest_rate_limit": "1000000/minute"}


def service_env(database_url: str, redis_url: str, **settings: Any) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    settings = {**LIFTED_RATE_LIMITS, **settings}
    env.update({f"CONTACTREPORTS_{name.upper()}": str(value) for name, value in settings.items()})
    return env


class Process:
    """A `contactreports` command running as a child process, stopped at the end.

    `launcher` runs it (`ip netns exec NAME`, say); `popen_options` go to subprocess.Popen (cwd...).
    """

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, launcher: Sequence[str] = (), **popen_options: Any
    ):
        self.log = log
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                [*launcher, sys.executable, "-m", "contactreports", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                **popen_options,
            )

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def wait_healthy(url: str, popen: subprocess.Popen, timeout: float = DEADLINE_SECONDS, *, redis: bool = True) -> None:
    """Poll `url`/health until it answers 200 (or 503 for Redis, when `redis` is False: it is down);
    fail if the process exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{popen.args} exited with {popen.returncode} before {url} was healthy")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == (200 if redis else 503):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} was not healthy within {timeout} s")


def start_api(env: dict[str, str], logs: Path, name: str, *, redis: bool = True) -> tuple[Process, str]:
    """An API process, once it answers; `redis=False` for one started with Redis down."""
    port = free_port()
    process = Process(["serve", "--port", str(port)], env, logs / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process.popen, redis=redis)
    except RuntimeError as error:
        process.stop()
        raise RuntimeError(f"{error}; its log:\n{process.log.read_text()}") from error
    return process, url


@pytest.fixture(scope="session")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def worker(database_url: str, redis_url: str, logs: Path) -> Iterator[Process]:
    # Small chunks, so a report over a few thousand events runs long enough to be caught processing.
    process = Process(["worker"], service_env(database_url, redis_url, chunk_rows=100), logs / "worker.log")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api(database_url: str, redis_url: str, logs: Path, worker: Process) -> Iterator[str]:
    """The API with a worker behind it."""
    process, url = start_api(service_env(database_url, redis_url), logs, "api")
    yield url
    process.stop()


@pytest.fixture(scope="session")
def paused_apis(database_url: str, redis_url: str, logs: Path) -> Iterator[list[str]]:
    """Two API processes whose reports no worker takes: they stay queued."""
    env = service_env(database_url, redis_url, queue_name=PAUSED_QUEUE)
    started = [start_api(env, logs, f"paused-api-{n}") for n in range(2)]
    yield [url for _, url in started]
    for process, _ in started:
        process.stop()


@pytest.fixture(scope="session")
def paused_api(paused_apis: list[str]) -> str:
    return paused_apis[0]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test's own connection to the session's database (never shared with the app)."""
    database = await Database.open(database_url)
    yield database
    await database.close()


@dataclass
class ApiAccount:
    id: int
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
async def new_account(db: Database) -> Callable[[], Awaitable[ApiAccount]]:
    async def create() -> ApiAccount:
        account, api_key = await create_account(db, f"test-{uuid.uuid4().hex[:8]}")
        return ApiAccount(account.id, api_key)

    return create


@pytest.fixture
async def account(new_account: Callable[[], Awaitable[ApiAccount]]) -> ApiAccount:
    return await new_account()


@pytest.fixture
async def client(api: str, account: ApiAccount) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api, headers=account.headers, timeout=30) as http:
        yield http


@pytest.fixture
async def paused_client(paused_api: str, account: ApiAccount) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=paused_api, headers=account.headers, timeout=30) as http:
        yield http


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = DEADLINE_SECONDS) -> Any:
    """Poll `check` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s")
        await asyncio.sleep(0.01)


async def wait_worker_lost_redis(worker: Process) -> None:
    """Until the worker's log says it lost Redis (it then keeps trying to connect)."""

    async def noticed() -> bool:
        return "worker lost Redis" in worker.log.read_text()

    await wait_until(noticed)
