"""Keep a worker running: arq's Worker exits when its Redis connection drops."""

from __future__ import annotations

import logging
import time

from arq import Worker
from redis.exceptions import RedisError

from contactreports.config import Settings
from contactreports.jobs.worker import worker_settings

log = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 1.0


def run_worker_forever(settings: Settings) -> None:
    """Run a worker until SIGINT/SIGTERM, starting it again whenever it loses Redis."""
    while True:
        try:
            Worker(**worker_settings(settings)).run()  # returns after a signal
            return
        except (RedisError, OSError) as error:
            log.warning("worker lost Redis (%s); starting again in %.0f s", error, RESTART_DELAY_SECONDS)
            time.sleep(RESTART_DELAY_SECONDS)
