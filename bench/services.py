"""The service as benchmarks run it: a Redis of its own, the API and any other processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from contactreports.embedded_redis import free_port, start_redis, stop_redis


@asynccontextmanager
async def running(work: Path, database_url: str, *others: list[str]) -> AsyncIterator[str]:
    """Start Redis, `contactreports serve` and `contactreports <other>` for each of `others` (say,
    ["worker"]) on `database_url`; yield the API's URL once it is healthy, and stop them all after.

    A benchmark drives one account hard, so its rate limits are lifted.
    """
    redis, redis_url = start_redis(work / "redis")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CONTACTREPORTS_REPORT_RATE_LIMIT": "1000000/minute",
        "CONTACTREPORTS_INGEST_RATE_LIMIT": "1000000/minute",
    }
    port = free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "contactreports", *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command in (["serve", "--port", str(port)], *others)
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_healthy(url)
        yield url
    finally:
        for process in processes:
            process.terminate()
            process.wait()
        stop_redis(redis)


async def wait_healthy(url: str, path: str = "/health") -> None:
    """Wait for `url` + `path` to answer 200."""
    async with httpx.AsyncClient(base_url=url) as http:
        while True:
            try:
                if (await http.get(path)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
