"""The Redis client of the API and of the worker, for any REDIS_URL that redis_config.py reads."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from contactreports.config import Settings
from contactreports.redis_config import RedisTarget, Tls, parse_redis_url

# A Redis that does not answer is down: the API's /health says so and its rate limits are
# skipped; a worker starts again, asking the sentinels anew for the master.
CONNECT_TIMEOUT_SECONDS = 2
REPLY_TIMEOUT_SECONDS = 5


class ReportsRedis(ArqRedis):
    """ArqRedis that, reaching its master through Sentinel, closes its connections to the
    sentinels with its own (the API closes its client on shutdown, arq a worker's)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if isinstance(self.connection_pool, SentinelConnectionPool):
            for sentinel in self.connection_pool.sentinel_manager.sentinels:
                await sentinel.aclose()


def open_redis(settings: Settings) -> ReportsRedis:
    """A client for settings.redis_url. It connects lazily, at its first command, so the API
    starts (and /health says so) even while Redis is down."""
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set (only `contactreports up` starts an embedded Redis)")
    target = parse_redis_url(settings.redis_url)
    master = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        **_timeouts(),
        **_tls_options(target.tls),
    }
    if target.master_name is None:
        host, port = target.servers[0]
        return ReportsRedis(host=host, port=port, **master)
    sentinels = Sentinel(target.servers, sentinel_kwargs=_sentinel_options(target), **master)
    # Each new connection asks the sentinels for the master's address: after a failover, the
    # next one goes to the new master.
    return sentinels.master_for(target.master_name, redis_class=ReportsRedis)


def _sentinel_options(target: RedisTarget) -> dict[str, Any]:
    return {
        "username": target.sentinel_username,
        "password": target.sentinel_password,
        **_timeouts(),
        **_tls_options(target.tls),
    }


def _timeouts() -> dict[str, Any]:
    return {"socket_connect_timeout": CONNECT_TIMEOUT_SECONDS, "socket_timeout": REPLY_TIMEOUT_SECONDS}


def _tls_options(tls: Tls | None) -> dict[str, Any]:
    if tls is None:
        return {}
    return {
        "ssl": True,
        "ssl_ca_certs": tls.ca_certs,
        "ssl_certfile": tls.certfile,
        "ssl_keyfile": tls.keyfile,
        "ssl_cert_reqs": tls.cert_reqs,
        "ssl_check_hostname": tls.check_hostname,
    }
