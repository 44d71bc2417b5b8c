"""Keep a worker running: arq's Worker exits when its Redis connection drops."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from arq import Worker
from redis.exceptions import RedisError

from contactreports.config import Settings
from contactreports.jobs.worker import ReportWorker, worker_settings
from contactreports.store.database import Database, open_database

log = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 1.0


def run_worker_forever(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM, starting it again whenever it loses Redis."""
    # arq's Worker runs on the thread's event loop; the database connection lives on it too.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    db = loop.run_until_complete(open_database(settings))
    stopping = asyncio.Event()
    try:
        # A signal during a Redis outage can end the worker with a Redis error: stop all the same.
        while not _run_once(_worker(settings, db, stopping)) and not stopping.is_set():
            time.sleep(RESTART_DELAY_SECONDS)
    finally:
        loop.run_until_complete(db.close())
        loop.close()


def _worker(settings: Settings, db: Database, stopping: asyncio.Event) -> Worker:
    worker = ReportWorker(**worker_settings(settings, db, stopping))

    def stop(signum: signal.Signals) -> None:
        stopping.set()  # running jobs hand their reports back after the chunk in hand
        worker.handle_sig_wait_for_completion(signum)

    # In place of arq's own handlers, which only wait for jobs or cancel them.
    for signum in (signal.SIGINT, signal.SIGTERM):
        worker.loop.add_signal_handler(signum, stop, signum)
    return worker


def _run_once(worker: Worker) -> bool:
    """Run the worker; True when it was stopped by a signal, False when it lost Redis."""
    try:
        worker.run()
    except asyncio.CancelledError:
        return True  # a signal cancelled a job that was still running; it is run again later
    except (RedisError, OSError) as error:
        if worker.main_task is not None and worker.main_task.cancelled():
            return True  # a signal stopped it, and Redis was down while it closed
        log.warning("worker lost Redis (%s); starting again in %.0f s", error, RESTART_DELAY_SECONDS)
        return False
    return True
