"""Webhooks from email platforms: the account's token and secrets under `/api/webhooks`, and the
public `POST /webhooks/{provider}/{account_token}` the platforms post their events to.

The public route has no API key: the token in its path names the account, and the provider's
adapter (webhooks/) checks the delivery against the secret the account set for that provider.
Its events then take the way `POST /api/events` does: the same checks, duplicates skipped by id;
but its rate limit is its own (see `Settings.webhook_rate_limit`), and an event that fails a
check is set aside and reported, not the whole delivery refused. The receiving itself is
`webhooks.receive`; here it is answered over HTTP.
"""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Controller, Request, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from contactreports.api.auth import SignedIn, provide_account
from contactreports.api.errors import ProblemError, invalid, problem_responses
from contactreports.api.limits import limit_webhooks
from contactreports.api.openapi import WebhookDeliveryOperation
from contactreports.api.schemas import WebhookProviderOut, WebhookSecretIn, WebhooksOut, WebhookTokenOut
from contactreports.models import FieldError, format_ms
from contactreports.store.webhooks import (
    account_for_webhook_token,
    delete_webhook_secret,
    rotate_webhook_token,
    set_webhook_secret,
    webhook_secrets_updated,
    webhook_token_created_at,
)
from contactreports.webhooks.base import Adapter, Delivery, Malformed, Unauthorized, Unavailable
from contactreports.webhooks.receive import SubscriptionUnconfirmed, WebhookResult, receive
from contactreports.webhooks.replays import RedisUnavailable

ProviderName = Annotated[
    str,
    Parameter(
        description="The platform: one of those `GET /api/webhooks` lists.", examples=[Example(value="postmark")]
    ),
]
AccountToken = Annotated[str, Parameter(description="The account's webhook token (`POST /api/webhooks/token`).")]


def _adapter(state: State, provider: str) -> Adapter:
    adapters: dict[str, Adapter] = state.webhook_adapters
    adapter = adapters.get(provider)
    if adapter is None:
        raise ProblemError(404, f"No such webhook provider {provider!r}: one of {', '.join(adapters)}.")
    return adapter


def _provider_out(adapter: Adapter, updated_at: int | None) -> WebhookProviderOut:
    return WebhookProviderOut(
        adapter.name,
        updated_at is not None,
        format_ms(updated_at) if updated_at is not None else None,
        adapter.secret_help,
    )


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post(
        "/token",
        operation_id="rotateWebhookToken",
        status_code=201,
        responses=problem_responses(403, 503),
        summary="Create or rotate the webhook token",
        description=(
            "A new token for the account's webhook URLs, `/webhooks/{provider}/{token}`, each given in full "
            "in `urls`. It is shown this once (only its hash is kept); a token made before stops working at "
            "once, so paste the new URLs into every provider. The token is not the API key: it only lets "
            "a provider post events, and only with that provider's secret."
        ),
    )
    async def rotate(self, request: Request, account: SignedIn, state: State) -> WebhookTokenOut:
        token, _ = await rotate_webhook_token(state.db, account.id)
        base = str(request.base_url).rstrip("/")
        return WebhookTokenOut(token, {name: f"{base}/webhooks/{name}/{token}" for name in state.webhook_adapters})

    @get(
        "/",
        operation_id="getWebhooks",
        responses=problem_responses(),
        summary="The webhook token and each provider's secret",
        description=(
            "Whether the account has a webhook token and when it was made (the token itself cannot be "
            "shown again), and for each provider whether its secret is set, when, and what it is."
        ),
    )
    async def overview(self, account: SignedIn, state: State) -> WebhooksOut:
        created_at = await webhook_token_created_at(state.db, account.id)
        updated = await webhook_secrets_updated(state.db, account.id)
        return WebhooksOut(
            created_at is not None,
            format_ms(created_at) if created_at is not None else None,
            [_provider_out(adapter, updated.get(name)) for name, adapter in state.webhook_adapters.items()],
        )

    @put(
        "/{provider:str}",
        operation_id="setWebhookSecret",
        responses=problem_responses(403, 404, 413, 503),
        summary="Set a provider's secret",
        description=(
            "The secret its deliveries are checked with (see `secret_help` in `GET /api/webhooks`); it "
            "replaces the one set before. Deliveries from a provider without a secret are refused with `401`."
        ),
    )
    async def set_secret(
        self, provider: ProviderName, data: JSONBody[WebhookSecretIn], account: SignedIn, state: State
    ) -> WebhookProviderOut:
        adapter = _adapter(state, provider)
        reason = adapter.check_secret(data.secret)
        if reason is not None:
            raise invalid([FieldError("secret", reason)])
        updated_at = await set_webhook_secret(state.db, account.id, adapter.name, data.secret)
        return _provider_out(adapter, updated_at)

    @delete(
        "/{provider:str}",
        operation_id="deleteWebhookSecret",
        status_code=204,
        responses=problem_responses(403, 404, 503),
        summary="Remove a provider's secret",
        description="Its deliveries are refused with `401` from now on. `204` also when it had none.",
    )
    async def unset_secret(self, provider: ProviderName, account: SignedIn, state: State) -> None:
        await delete_webhook_secret(state.db, account.id, _adapter(state, provider).name)


async def webhook_account(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A guard: the provider must be known and the token an account's, before the rate limit counts."""
    _adapter(connection.app.state, connection.path_params["provider"])
    account = await account_for_webhook_token(connection.app.state.db, connection.path_params["account_token"])
    if account is None:
        raise ProblemError(404, "Unknown webhook token: make one with POST /api/webhooks/token.")
    connection.state.account = account


@post(
    "/webhooks/{provider:str}/{account_token:str}",
    operation_id="receiveWebhook",
    status_code=200,
    guards=[webhook_account, limit_webhooks],
    dependencies={"account": Provide(provide_account)},
    operation_class=WebhookDeliveryOperation,
    responses=problem_responses(404, 413, 429, 502, 503),
    tags=["webhooks"],
    summary="Receive a provider's webhook",
    description=(
        "The URL to paste into the provider's dashboard (`POST /api/webhooks/token` gives it). No API key: "
        "the token names the account, and the delivery must be signed or authenticated as the provider "
        "documents, with the secret set by `PUT /api/webhooks/{provider}` (else `401`; nothing stored). "
        "A redelivered event is counted as a duplicate, and campaigns the provider names are created on "
        "first sight. Event types that mean nothing to a contact report are counted in `ignored`; an event "
        "that fails the checks of `POST /api/events` is set aside and named in `rejected`, and the others "
        "are stored. A body that is not the provider's format, or more events than `POST /api/events` takes "
        "in a request: `400`, nothing stored. A Mailgun signature seen before with other events, or no newer "
        "than the oldest the account keeps: `401`. Past the deliveries that may fail verification for the "
        "account and provider: `429` with `Retry-After`, without verifying (`503` while Redis cannot count "
        "them). Amazon SNS's subscription confirmation is answered here too (`502` when SNS could not be "
        "reached; `503` when its signing certificate could not be fetched)."
    ),
)
async def receive_webhook(
    provider: ProviderName, account_token: AccountToken, request: Request, account: SignedIn, state: State
) -> WebhookResult:
    delivery = Delivery(
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.body(),
        received_at=time.time(),
    )
    try:
        return await receive(state, account, _adapter(state, provider), delivery)
    except Unauthorized as error:
        raise ProblemError(401, str(error) or "Not sent by the provider with this account's secret.") from error
    except Malformed as error:
        raise invalid([FieldError("body", str(error))]) from error
    except Unavailable as error:  # the provider retries a 503; a 401 would lose its events
        raise ProblemError(503, f"{error} Nothing was stored; try again.", headers={"Retry-After": "5"}) from error
    except RedisUnavailable as error:
        raise ProblemError(503, str(error)) from error
    except SubscriptionUnconfirmed as error:
        raise ProblemError(502, str(error)) from error
