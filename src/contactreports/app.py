"""create_app(): the Litestar application: the JSON API, its health check, and the web page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from contactreports.api.actions import list_actions
from contactreports.api.auth import provide_account, require_api_key
from contactreports.api.campaigns import CampaignController
from contactreports.api.docs import docs_assets, docs_page
from contactreports.api.edge import BodyDeadline
from contactreports.api.errors import EXCEPTION_HANDLERS
from contactreports.api.events import EventController
from contactreports.api.health import health
from contactreports.api.keys import KeyController
from contactreports.api.options import answer_options
from contactreports.api.reports import ReportController
from contactreports.api.requests import ApiRequest
from contactreports.api.webhooks import WebhookController, receive_webhook
from contactreports.config import Settings, load_settings
from contactreports.jobs.redis_client import open_redis
from contactreports.limits import RateLimits
from contactreports.paging import Cursors
from contactreports.store.database import open_database
from contactreports.store.meta import cursor_secret, session_secret
from contactreports.web.pages import TEMPLATES, web_routers
from contactreports.web.session import session_backend
from contactreports.webhooks import make_adapters


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set (only `contactreports up` starts an embedded Redis)")

    sessions = session_backend(secure=settings.web_secure_cookie)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = await open_database(settings)
        sessions.use_secret(await session_secret(db))
        redis = open_redis(settings)
        app.state.update(
            db=db,
            redis=redis,
            settings=settings,
            cursors=Cursors(await cursor_secret(db)),
            rate_limits=RateLimits(redis, settings),
            webhook_adapters=make_adapters(settings),
        )
        try:
            yield
        finally:
            await redis.aclose()
            await db.close()

    api = Router(
        "/api",
        route_handlers=[
            list_actions,
            CampaignController,
            EventController,
            ReportController,
            WebhookController,
            KeyController,
        ],
        guards=[require_api_key],
        dependencies={"account": Provide(provide_account)},
        security=[{"BearerAuth": []}],
    )
    return Litestar(
        route_handlers=[api, receive_webhook, health, docs_assets, *web_routers(sessions, settings.max_form_bytes)],
        template_config=TEMPLATES,
        lifespan=[lifespan],
        state=State({}),
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=answer_options,
        request_class=ApiRequest,
        request_max_body_size=settings.max_body_bytes,
        multipart_form_part_limit=settings.max_form_fields,
        middleware=[
            DefineMiddleware(
                BodyDeadline, seconds=settings.body_timeout_seconds, max_drain_bytes=settings.max_body_bytes
            )
        ],
        openapi_config=OpenAPIConfig(
            title="contactreports",
            version="1",
            description="What exactly happened with one contact: contact reports computed as background jobs.",
            path="/schema",
            render_plugins=[docs_page()],
            components=Components(
                security_schemes={
                    "BearerAuth": SecurityScheme(type="http", scheme="bearer", description="An account's API key."),
                }
            ),
        ),
    )
