"""Webhooks from email platforms: the account's token and secrets under `/api/webhooks`, and the
public `POST /webhooks/{provider}/{account_token}` the platforms post their events to.

The public route has no API key: the token in its path names the account, and the provider's
adapter (webhooks/) checks the delivery against the secret the account set for that provider.
Its events then take the way `POST /api/events` does: the same checks, duplicates skipped by id;
but its rate limit is its own (see `Settings.webhook_rate_limit`), and an event that fails a
check is set aside and reported, not the whole delivery refused (see `_checked`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Annotated

import httpx
import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import BaseRouteHandler
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter
from redis.exceptions import RedisError

from contactreports.api.auth import SignedIn, provide_account
from contactreports.api.errors import ProblemError, invalid, problem_responses
from contactreports.api.events import unknown_campaigns
from contactreports.api.limits import limit_webhooks
from contactreports.api.openapi import WebhookDeliveryOperation
from contactreports.api.schemas import (
    WebhookProviderOut,
    WebhookResult,
    WebhookSecretIn,
    WebhooksOut,
    WebhookTokenOut,
)
from contactreports.ingest import InvalidEvents, check_events, decode_line
from contactreports.limits import UNCOUNTED, RateLimited, RateLimits
from contactreports.models import MAX_CAMPAIGN_NAME, Account, FieldError, NewEvent, format_ms, text_controls_as_spaces
from contactreports.store.events import UnknownCampaigns, insert_events
from contactreports.store.webhooks import (
    account_for_webhook_token,
    delete_webhook_secret,
    get_webhook_secret,
    rotate_webhook_token,
    set_webhook_secret,
    webhook_secrets_updated,
    webhook_token_created_at,
)
from contactreports.webhooks.base import (
    Adapter,
    Delivery,
    Malformed,
    Parsed,
    Unauthorized,
    Unavailable,
    off_loop,
    shown,
)

log = logging.getLogger(__name__)
# Amazon SNS waits for the confirmation no longer than a webhook delivery waits for our answer.
SUBSCRIBE_TIMEOUT_SECONDS = 10
# The longest name of an ignored type answered and logged (see `_ignored_names`).
MAX_IGNORED_NAME = 100
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


def _campaign_name(campaign_id: str, name: str) -> str:
    """A provider's name for a campaign as PUT /api/campaigns takes one: control characters become
    spaces, and it is cut to 200 characters (a provider's name is shown, never looked up)."""
    cleaned = text_controls_as_spaces(name).strip()[:MAX_CAMPAIGN_NAME]
    return cleaned or campaign_id[:MAX_CAMPAIGN_NAME]


def _checked(parsed: Parsed, max_details_bytes: int) -> tuple[list[NewEvent], list[FieldError]]:
    """The adapter's events that pass every check of `POST /api/events`, and what is wrong with the others.

    A provider retries a refused delivery whole, then gives up on it: one event we cannot store
    (an address our check refuses, an over-long tag) must not cost the delivery's other events.
    What is wrong is named by the event's position in the delivery (`Parsed.positions`), with
    what the adapter set aside itself, in the order of the delivery.
    """
    positions = parsed.positions or list(range(len(parsed.events)))
    decoded, kept, rejected = [], [], list(parsed.rejected)
    for position, event in zip(positions, parsed.events, strict=True):
        try:
            # Encoded and decoded again: the limits EventIn declares (lengths of ids, say) hold too.
            decoded.append(decode_line(position, msgspec.json.encode(event)))
        except InvalidEvents as error:
            rejected.extend(error.errors)
        else:
            kept.append(position)
    valid, errors = check_events(decoded, max_details_bytes, kept)
    return valid, sorted(rejected + errors, key=_position)


def _parsed_and_checked(
    adapter: Adapter, delivery: Delivery, max_details_bytes: int
) -> tuple[Parsed, list[NewEvent], list[FieldError]]:
    """The verified delivery's events: what the adapter makes of it, and of those the events to
    store and what is wrong with the others (see `_checked`). Run by `off_loop`: CPU work."""
    parsed = adapter.parse(delivery)
    return parsed, *_checked(parsed, max_details_bytes)


def _position(error: FieldError) -> int:
    """The position a rejected event's error names (`[12].email`: 12); sorted stably, so an
    event's errors keep their order."""
    match = _POSITION.match(error.field)
    return int(match[1]) if match else -1


_POSITION = re.compile(r"\[(\d+)\]")


def _ignored_names(ignored: dict[str, int]) -> dict[str, int]:
    """The provider's names of the types it ignored, as they may be answered and logged.

    They are the provider's text, of any length and any characters: each control character
    (a newline would start a line of its own in the log) is written as its escape (`\\n`,
    `\\x07`), then a name longer than MAX_IGNORED_NAME characters is cut to that many, the last
    an ellipsis. Names alike once so cut (two long names of one prefix) are counted together,
    so the counts still add up to the events ignored.
    """
    names: dict[str, int] = {}
    for name, count in ignored.items():
        escaped = shown(_CONTROLS_IN_TYPE.sub(lambda control: repr(control[0])[1:-1], name), MAX_IGNORED_NAME)
        names[escaped] = names.get(escaped, 0) + count
    return names


# Control characters, and the two line breaks of Unicode a log viewer may break a line at.
_CONTROLS_IN_TYPE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


async def _store(state: State, account: Account, events: list[NewEvent], parsed: Parsed) -> tuple[int, int]:
    """Store the events all or nothing, creating the campaigns they name on first sight."""
    named = {event.campaign_id for event in events if event.campaign_id}
    campaigns = {id_: _campaign_name(id_, name) for id_, name in parsed.campaigns.items() if id_ in named}
    try:
        return await insert_events(state.db, account.id, events, new_campaigns=campaigns)
    except UnknownCampaigns as error:
        raise unknown_campaigns(error) from error


async def _verify(state: State, account: Account, adapter: Adapter, delivery: Delivery, secret: str) -> None:
    """`adapter.verify`, counting each delivery it refuses against the account's limit for the
    provider (`Settings.webhook_failure_limit`); past it, deliveries are refused (429) without
    being verified, so that guessing the secret (a Postmark password, a Brevo token) gets nowhere.
    A provider retries a 429, so its own deliveries come later, not never.

    Counted in Redis, as the rate limits are, so every API process shares the count; deliveries
    checked at the same moment may all pass before their failures are counted, so a burst can
    get as many more tries as it has requests in flight. Without Redis the count is unknown:
    503, which providers retry, as for the Mailgun replay guard (see `_signed_once`).
    """
    limits: RateLimits = state.rate_limits
    keys = (str(account.id), adapter.name)
    try:
        seconds = await limits.spent("webhook-failures", *keys)
        if seconds is not None:
            raise RateLimited(
                f"Too many {adapter.name} deliveries to this webhook token failed verification: "
                f"at most {limits.limits['webhook-failures']} may fail.",
                seconds,
            )
        try:
            await adapter.verify(delivery, secret)
        except Unauthorized:
            await limits.count("webhook-failures", *keys)
            raise
    except UNCOUNTED as error:
        raise _redis_unavailable() from error


def _redis_unavailable() -> ProblemError:
    return ProblemError(503, "Redis is unavailable; try again. Nothing was stored.")


async def _signed_once(state: State, account: Account, adapter: Adapter, parsed: Parsed, received_at: float) -> None:
    """Refuse a signature seen before with other events: a replay carrying forged ones.

    Mailgun signs a timestamp and a token, not the body, so whoever sees one delivery could post
    any events with its signature for as long as it is accepted; Mailgun's advice is to keep the
    tokens used. The same events again are a retry, let through to count as duplicates. What is
    compared is what the delivery says (its events, sorted keys), not its bytes: a retry written
    out anew, with other spacing or key order, is still the same delivery.

    The tokens are kept in Redis, at most `Settings.webhook_signatures_kept` an account (see
    _KEEP_SIGNATURE), so no account can fill the shared Redis: past that many, the oldest is
    forgotten to keep a new one, and a signature no newer than those forgotten is refused as one
    that might be a replay. So the window shrinks while an account gets more signatures than it
    may keep for as long as they are accepted, and a replay never gets through.
    """
    keys = [f"contactreports:webhook-signatures:{account.id}:{adapter.name}:{part}" for part in ("at", "said")]
    said = msgspec.json.encode([parsed.events, parsed.campaigns, parsed.ignored], order="sorted")
    kept = state.settings.webhook_signatures_kept
    arguments = [
        _digest((parsed.nonce or "").encode()),
        _digest(said),
        parsed.nonce_signed_at,
        received_at - parsed.nonce_seconds,
        kept,
        max(parsed.nonce_seconds, 1),
    ]
    try:
        seen = await state.redis.register_script(_KEEP_SIGNATURE)(keys=keys, args=arguments)
    except RedisError as error:  # unchecked, it might be a replay: the provider retries a 503
        raise _redis_unavailable() from error
    if seen == b"replay":
        raise ProblemError(401, "This signature came before with another body: a replay. Nothing was stored.")
    if seen == b"too old":
        raise ProblemError(
            401,
            f"This signature is no newer than the oldest of the {kept:,} this account keeps against replays, "
            "so it might be one. Nothing was stored.",
        )


def _digest(data: bytes) -> str:
    """128 bits of SHA-256: no two tokens or bodies share them but by design, which no one can do."""
    return hashlib.sha256(data).hexdigest()[:32]


# Keeps the token of a signature (ARGV[1]) with the digest of what it signed (ARGV[2]), atomically
# (a Lua script: no other API process comes in between), in two keys of the account's:
# KEYS[1], a sorted set of the tokens by when they were signed (ARGV[3]), and KEYS[2], a hash of
# token -> digest. First it forgets the tokens signed before ARGV[4], which the adapter refuses
# anyway. A token kept already: "again" with the same digest, else "replay". A new one: when
# ARGV[5] are kept, "too old" if it was signed no later than the newest of those it would push
# out, else they are forgotten and it is kept: "new". So every token signed after the newest one
# forgotten is kept while it is accepted, and none signed before is accepted again. The keys
# live ARGV[6] seconds after their last token. Forgetting goes 1,000 tokens a call: Lua takes
# only so many arguments.
_KEEP_SIGNATURE = """
local at, said = KEYS[1], KEYS[2]
local token, digest, signed_at, kept = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local function forget(tokens)
  for first = 1, #tokens, 1000 do
    local last = math.min(first + 999, #tokens)
    redis.call('ZREM', at, unpack(tokens, first, last))
    redis.call('HDEL', said, unpack(tokens, first, last))
  end
end
forget(redis.call('ZRANGEBYSCORE', at, '-inf', '(' .. ARGV[4]))
local before = redis.call('HGET', said, token)
if before then
  return before == digest and 'again' or 'replay'
end
local excess = redis.call('ZCARD', at) - kept + 1
if excess > 0 then
  local oldest = redis.call('ZRANGE', at, 0, excess - 1, 'WITHSCORES')
  if signed_at <= tonumber(oldest[#oldest]) then
    return 'too old'
  end
  local tokens = {}
  for i = 1, #oldest, 2 do
    tokens[#tokens + 1] = oldest[i]
  end
  forget(tokens)
end
redis.call('ZADD', at, signed_at, token)
redis.call('HSET', said, token, digest)
redis.call('EXPIRE', at, ARGV[6])
redis.call('EXPIRE', said, ARGV[6])
return 'new'
"""


async def _confirm_subscription(url: str) -> None:
    """Amazon SNS's handshake: GET the SubscribeURL of a verified SubscriptionConfirmation."""
    try:
        async with httpx.AsyncClient(timeout=SUBSCRIBE_TIMEOUT_SECONDS) as http:
            (await http.get(url)).raise_for_status()
    except httpx.HTTPError as error:
        raise ProblemError(
            502, f"Could not confirm the subscription at {httpx.URL(url).host}: {error or type(error).__name__}."
        ) from error


@post(
    "/webhooks/{provider:str}/{account_token:str}",
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
    adapter = _adapter(state, provider)
    secret = await get_webhook_secret(state.db, account.id, adapter.name)
    if secret is None:
        raise ProblemError(
            401,
            f"No {adapter.name} secret is set for this account: set it with PUT /api/webhooks/{adapter.name} "
            f"(or `contactreports webhooks set {adapter.name} SECRET`). Nothing was stored.",
        )
    delivery = Delivery(
        headers={name.lower(): value for name, value in request.headers.items()},
        body=await request.body(),
        received_at=time.time(),
    )
    try:
        await _verify(state, account, adapter, delivery, secret)
        parsed, events, rejected = await off_loop(
            delivery, _parsed_and_checked, adapter, delivery, state.settings.max_details_bytes
        )
    except Unauthorized as error:
        raise ProblemError(401, str(error) or "Not sent by the provider with this account's secret.") from error
    except Malformed as error:
        raise invalid([FieldError("body", str(error))]) from error
    except Unavailable as error:  # the provider retries a 503; a 401 would lose its events
        raise ProblemError(503, f"{error} Nothing was stored; try again.", headers={"Retry-After": "5"}) from error
    if parsed.nonce is not None:
        await _signed_once(state, account, adapter, parsed, delivery.received_at)
    if parsed.subscribe_url is not None:
        await _confirm_subscription(parsed.subscribe_url)
    ingested, duplicates = await _store(state, account, events, parsed) if events else (0, 0)
    ignored = _ignored_names(parsed.ignored)
    if ignored:
        counts = ", ".join(f"{kind} x{count}" for kind, count in sorted(ignored.items()))
        log.info("%s webhook for account %s: ignored %s", adapter.name, account.id, counts)
    if rejected:
        reasons = "; ".join(f"{error.field}: {error.message}" for error in rejected[:5])
        log.warning(
            "%s webhook for account %s: set aside %d events: %s", adapter.name, account.id, len(rejected), reasons
        )
    return WebhookResult(ingested, duplicates, ignored, rejected)
