"""The API's rate limit guards on the requests that make work: creating reports, ingesting events,
webhooks (`contactreports.limits` counts them)."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from contactreports.limits import RateLimits


def rate_limited(kind: str):
    """A guard (after the API key guard) answering 429 past the account's `kind` limit."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        limits: RateLimits = connection.app.state.rate_limits
        await limits.check(kind, connection.state.account.id)

    return guard


limit_report_creation = rate_limited("reports")
limit_ingestion = rate_limited("events")
limit_webhooks = rate_limited("webhooks")
