"""Per-account rate limits on the requests that make work: creating reports, ingesting events,
webhooks; and on webhook deliveries that fail verification.

The `limits` library counts hits in Redis with atomic scripts, so every API process shares one
count per account. A limit is a moving window ("60/minute" is at most 60 in any 60 seconds).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from arq.connections import ArqRedis
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from contactreports.config import Settings

log = logging.getLogger(__name__)
# A local Redis answers in well under a millisecond; past this, the request goes on unchecked.
CHECK_TIMEOUT_SECONDS = 0.5
# What each limit of requests counts, as a refusal says it.
COUNTED = {"reports": "reports created", "events": "event batches", "webhooks": "webhook deliveries"}


class RateLimits:
    def __init__(self, redis: ArqRedis, settings: Settings):
        storage = RedisStorage(
            "async+redis://",  # only names the client; the API's own pool (closed with it) connects
            implementation="redispy",
            connection_pool=redis.connection_pool,
            key_prefix="contactreports:limits",
            wrap_exceptions=True,
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self.limits = {
            "reports": parse(settings.report_rate_limit),
            "events": parse(settings.ingest_rate_limit),
            "webhooks": parse(settings.webhook_rate_limit),
            "webhook-failures": parse(settings.webhook_failure_limit),
        }

    async def retry_after(self, kind: str, account_id: int) -> int | None:
        """Count one request; None if it is within the limit, else the seconds until one is."""
        limit = self.limits[kind]
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                if await self._limiter.hit(limit, kind, str(account_id)):
                    return None
                reset_at, _ = await self._limiter.get_window_stats(limit, kind, str(account_id))
        except UNCOUNTED:
            # Without Redis the count is unknown; refusing, or waiting on a hung Redis, would stop
            # ingestion, which needs only SQLite.
            log.warning("rate limit for %s not checked: Redis is unavailable", kind, exc_info=True)
            return None
        return _seconds_until(reset_at)

    async def check(self, kind: str, account_id: int) -> None:
        """Count one request; raises RateLimited past the account's `kind` limit (one of COUNTED)."""
        seconds = await self.retry_after(kind, account_id)
        if seconds is not None:
            raise RateLimited(f"Too many {COUNTED[kind]}: this account may make {self.limits[kind]}.", seconds)

    async def spent(self, kind: str, *keys: str) -> int | None:
        """Without counting one: None while the `kind` limit of `keys` has room for one more, else
        the seconds until it has. Raises one of UNCOUNTED when Redis cannot say."""
        limit = self.limits[kind]
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            reset_at, remaining = await self._limiter.get_window_stats(limit, kind, *keys)
        return None if remaining > 0 else _seconds_until(reset_at)

    async def count(self, kind: str, *keys: str) -> None:
        """Count one against the `kind` limit of `keys`; raises one of UNCOUNTED when Redis cannot."""
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await self._limiter.hit(self.limits[kind], kind, *keys)


# What RateLimits raises when Redis is down or slower than CHECK_TIMEOUT_SECONDS.
UNCOUNTED = (StorageError, TimeoutError)


def _seconds_until(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))


class RateLimited(Exception):
    """Refused for now: says `reason` and when to try again (the API's 429, with Retry-After)."""

    def __init__(self, reason: str, seconds: int):
        super().__init__(f"{reason} Try again in {seconds} s; nothing was stored.")
        self.seconds = seconds
