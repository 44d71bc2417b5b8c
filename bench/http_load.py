"""A load process: N keep-alive clients GET one URL in a loop for a fixed time.

bench/polling.py runs it as a process of its own, so that its CPU is not the server's:

    .venv/bin/python bench/http_load.py URL --expect FILE --out FILE [--clients 50] [--warmup 1]
        [--seconds 10] [--header 'Name: value'] [--watch PID]

Why aiohttp and not locust: against the same server, locust (FastHttpUser) spent about 255 µs
of CPU a request and this about 160 µs; on 2 cores shared with the server, the tool's CPU is
the server's loss.

Every answer must be 200 with exactly the body in FILE; any other answer, or a connection
error, is an error. Writes one JSON object to `--out` about the requests sent after the warmup:
their count, errors, sorted latencies (ms), this process's CPU seconds and those of the
`--watch`ed processes (the server) over the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp
import msgspec
import psutil
import uvloop


class Tally(msgspec.Struct):
    requests: int = 0
    errors: int = 0
    first_error: str | None = None
    latencies_ms: list[float] = []
    load_cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0


class Run(msgspec.Struct, frozen=True):
    url: str
    expect: bytes
    warmup_ends: float
    ends: float


async def client(session: aiohttp.ClientSession, run: Run, tally: Tally) -> None:
    while (started := time.perf_counter()) < run.ends:
        try:
            async with session.get(run.url) as response:
                body = await response.read()
            error = None if response.status == 200 and body == run.expect else f"{response.status} {body[:300]!r}"
        except aiohttp.ClientError as failure:
            error = repr(failure)
        if started >= run.warmup_ends:
            tally.requests += 1
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            if error is not None:
                tally.errors += 1
                tally.first_error = tally.first_error or error


async def drive(arguments: argparse.Namespace) -> Tally:
    tally = Tally()
    ourselves, server = psutil.Process(), [psutil.Process(pid) for pid in arguments.watch]
    headers = dict(header.split(": ", 1) for header in arguments.header)
    # At most one connection per client, kept alive between its requests.
    connector = aiohttp.TCPConnector(limit=arguments.clients)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        now = time.perf_counter()
        run = Run(
            arguments.url,
            arguments.expect.read_bytes(),
            now + arguments.warmup,
            now + arguments.warmup + arguments.seconds,
        )
        clients = asyncio.gather(*(client(session, run, tally) for _ in range(arguments.clients)))
        await asyncio.sleep(arguments.warmup)
        load_before, server_before = _cpu([ourselves]), _cpu(server)
        await clients
        tally.load_cpu_seconds = _cpu([ourselves]) - load_before
        tally.server_cpu_seconds = _cpu(server) - server_before
    tally.latencies_ms.sort()
    return tally


def _cpu(processes: list[psutil.Process]) -> float:
    return sum(times.user + times.system for times in (process.cpu_times() for process in processes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--expect", type=Path, required=True, help="the exact body every answer must have")
    parser.add_argument("--out", type=Path, required=True, help="where to write the result (JSON)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--watch", type=int, action="append", default=[], help="a server process's pid (repeatable)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    arguments = parser.parse_args()
    # A file, not stdout: once, in a run of several minutes, the result read from a pipe came back
    # empty although the process ended well, and the cause was not found.
    arguments.out.write_bytes(msgspec.json.encode(uvloop.run(drive(arguments))))


if __name__ == "__main__":
    main()
