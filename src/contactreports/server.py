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

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels

from contactreports.config import Settings

APP_FACTORY = "contactreports.app:create_app"
# A stop waits this long for the requests under way (a long export, say), then ends them.
SHUTDOWN_GRACE_SECONDS = 10


def serve_api(settings: Settings, host: str, port: int, workers: int, app: str = APP_FACTORY) -> None:
    """Serve the API until SIGINT or SIGTERM; each process builds its app from the environment.

    `app` names another app factory (bench/polling.py serves its floor app the same way).

    Exits non-zero when a process cannot start (say, the database cannot be opened), so that
    a process manager does not take it for a clean stop.
    """
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
