"""The service as benchmarks run it: a Redis of its own, the API and any other processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

from contactreports.cli.embedded_redis import free_port, start_redis, stop_redis

# What service_env lifts the rate limits to.
LIFTED_RATE_LIMIT = "1000000/minute"


@contextmanager
def service_env(work: Path, database_url: str) -> Iterator[dict[str, str]]:
    """Start a Redis of its own; yield the environment a `contactreports` process needs to use it.

    A benchmark drives one account hard, so its rate limits are lifted.
    """
    redis, redis_url = start_redis(work / "redis")
    try:
        yield {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CONTACTREPORTS_REPORT_RATE_LIMIT": LIFTED_RATE_LIMIT,
            "CONTACTREPORTS_INGEST_RATE_LIMIT": LIFTED_RATE_LIMIT,
            "CONTACTREPORTS_WEBHOOK_RATE_LIMIT": LIFTED_RATE_LIMIT,
        }
    finally:
        stop_redis(redis)


@contextmanager
def commands(env: dict[str, str], *commands: list[str]) -> Iterator[list[subprocess.Popen]]:
    """Run `contactreports <command>` for each of `commands`; stop them all (SIGTERM) after."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "contactreports", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command in commands
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
            process.wait()


@contextmanager
def profiled(pids: list[int], folder: Path | None, name: str, gil_only: bool = True) -> Iterator[None]:
    """With `folder`, record each process with py-spy, as collapsed stacks in `folder/<name>-<n>.txt`.

    `gil_only`: only the samples holding the GIL (the Python work, not waits on Redis or SQLite);
    without it, every thread's samples while it is busy, SQLite's own work among them.
    """
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    options = ["--format", "raw", "--rate", "500", *(["--gil"] if gil_only else [])]
    spies = [
        subprocess.Popen(
            [spy, "record", *options, "--pid", str(pid), "--output", str(folder / f"{name}-{n}.txt")],
            stdout=subprocess.DEVNULL,
        )
        for n, pid in enumerate(pids)
    ]
    try:
        yield
    finally:
        for process in spies:
            process.send_signal(signal.SIGINT)
            process.wait()


@asynccontextmanager
async def running(work: Path, database_url: str, *others: list[str]) -> AsyncIterator[str]:
    """Start Redis, `contactreports serve` and `contactreports <other>` for each of `others` (say,
    ["worker"]) on `database_url`; yield the API's URL once it is healthy, and stop them all after.
    """
    port = free_port()
    with service_env(work, database_url) as env, commands(env, ["serve", "--port", str(port)], *others):
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        yield url


async def wait_healthy(url: str, path: str = "/health", within_seconds: float = 60) -> None:
    """Wait for `url` + `path` to answer 200; a process that never does is an error."""
    deadline = time.monotonic() + within_seconds
    async with httpx.AsyncClient(base_url=url) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} was not healthy within {within_seconds} s")
