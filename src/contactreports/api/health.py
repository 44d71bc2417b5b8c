"""`GET /health`: checks the database and Redis for real."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi import ResponseSpec

from contactreports.api.openapi import PublicOperation
from contactreports.api.schemas import Health

_TIMEOUT_SECONDS = 2


async def _check(probe) -> str:
    try:
        await asyncio.wait_for(probe, _TIMEOUT_SECONDS)
    except Exception:  # any failure means: down
        return "down"
    return "ok"


@get(
    "/health",
    operation_id="getHealth",
    operation_class=PublicOperation,
    tags=["service"],
    summary="Service health",
    responses={503: ResponseSpec(Health, description="The database or Redis is down")},
)
async def health(state: State) -> Response[Health]:
    database = await _check(state.db.ping())
    redis = await _check(state.redis.ping())
    healthy = database == redis == "ok"
    body = Health("ok" if healthy else "unavailable", database, redis)
    return Response(body, status_code=200 if healthy else 503)
