"""The HTTP server: Granian, with the limits that keep one client from hurting the others.

The embedded default is what people run, with no proxy in front, so the server itself must
refuse what a proxy would: Granian (Rust, hyper) answers oversized request heads with `431`,
closes a connection whose head has not arrived in time (idle ones and idle keep-alive ones
too, over HTTP/1 only: its HTTP/2 detection has no such timer), and serves at most so many
connections a process, the rest waiting in the listen backlog. What Granian does not bound,
the slow body, the app does (api/edge.py). docs/benchmarks.md (section 4) compares it with
uvicorn, which has no head timeout at all.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

from litestar import Litestar

from contactreports.app import create_app
from contactreports.config import Settings

APP_FACTORY = "contactreports.server:worker_app"
# A stop waits this long for the requests under way (a long export, say), then ends them.
SHUTDOWN_GRACE_SECONDS = 10


# prctl(2)'s option: the signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def worker_app() -> Litestar:
    """The app of one server process, which dies with the server that started it.

    Granian serves from child processes: were the server itself killed (`kill -9`, the OOM
    killer), they would go on serving, orphaned, holding the port and the requests in hand.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return create_app()


def serve_api(settings: Settings, host: str, port: int, workers: int, app: str = APP_FACTORY) -> None:
    """Serve the API until SIGINT or SIGTERM; each process builds its app from the environment.

    `app` names another app factory (bench/polling.py serves its floor app the same way).

    Exits non-zero when a process cannot start (say, the database cannot be opened), so that
    a process manager does not take it for a clean stop.
    """
    # Granian's own allocator (jemalloc, which reads this when granian is imported) keeps what
    # 1,000 connections freed for good unless told to give it back: with this, the slow clients
    # of tests/test_edge.py leave the server's memory as it was.
    os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0")
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    Granian(
        app,
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=workers,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(
            header_read_timeout=round(settings.header_timeout_seconds * 1000),
            # hyper's read buffer: a request head that does not fit is a 431.
            max_buffer_size=settings.max_head_bytes,
        ),
        backpressure=settings.max_connections,
        # A worker that dies (not one that cannot start: that is a crash loop, and an exit) is replaced.
        respawn_failed_workers=True,
        workers_kill_timeout=SHUTDOWN_GRACE_SECONDS,
        log_level=LogLevels.warning,
    ).serve()
