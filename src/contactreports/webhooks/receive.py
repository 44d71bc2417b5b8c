"""Receiving a provider's webhook delivery for an account: verify it (counting the failures),
guard against replays, check its events as `POST /api/events` does, store them.

It knows nothing of HTTP: the API's route (api/webhooks.py) finds the account and the adapter,
hands over the delivery and answers what this gives or raises. Refusals: `Unauthorized` (no
secret set, not the provider's signature, a replay), `Malformed`, `Unavailable` (webhooks.base),
`RateLimited` (too many failed verifications), `RedisUnavailable`, `SubscriptionUnconfirmed`,
and `store.events.UnknownCampaigns`.
"""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
import msgspec

from contactreports.limits import UNCOUNTED, RateLimited
from contactreports.models import Account, FieldError, NewEvent
from contactreports.services import Services
from contactreports.store.events import insert_events
from contactreports.store.webhooks import get_webhook_secret
from contactreports.webhooks.base import Adapter, Delivery, Parsed, Unauthorized, off_loop
from contactreports.webhooks.checks import campaign_name, ignored_names, parsed_and_checked
from contactreports.webhooks.replays import RedisUnavailable, signed_once

log = logging.getLogger(__name__)
# Amazon SNS waits for the confirmation no longer than a webhook delivery waits for our answer.
SUBSCRIBE_TIMEOUT_SECONDS = 10


class WebhookResult(msgspec.Struct):
    ingested: int
    duplicates: int
    ignored: Annotated[
        dict[str, int],
        msgspec.Meta(
            description="The provider's event types not mapped onto the catalogue, with their counts. A name "
            "has its control characters escaped (`\\n`) and is cut to 100 characters (the last `…`); names "
            "alike once cut are counted together."
        ),
    ]
    rejected: Annotated[
        list[FieldError],
        msgspec.Meta(
            description="Events set aside, so that the delivery's other events are stored: those that fail the "
            "checks of `POST /api/events` (say, an address that is not one) or lack what the provider's format "
            "gives every event (say, a time). Each is named `[position].field` by its position in the delivery "
            "as the provider numbers them (an index in the posted array, ignored events counted; for Amazon "
            "SES, the recipient's index in the record), and they come in that order."
        ),
    ]


class SubscriptionUnconfirmed(Exception):
    """Amazon SNS's subscription could not be confirmed (the API's 502)."""


async def receive(services: Services, account: Account, adapter: Adapter, delivery: Delivery) -> WebhookResult:
    """What became of a delivery's events: stored, duplicates, ignored, set aside."""
    secret = await get_webhook_secret(services.db, account.id, adapter.name)
    if secret is None:
        raise Unauthorized(
            f"No {adapter.name} secret is set for this account: set it with PUT /api/webhooks/{adapter.name} "
            f"(or `contactreports webhooks set {adapter.name} SECRET`). Nothing was stored."
        )
    await _verify(services, account, adapter, delivery, secret)
    parsed, events, rejected = await off_loop(
        delivery, parsed_and_checked, adapter, delivery, services.settings.max_details_bytes
    )
    if parsed.nonce is not None:
        await signed_once(services, account, adapter, parsed, delivery.received_at)
    if parsed.subscribe_url is not None:
        await _confirm_subscription(parsed.subscribe_url)
    ingested, duplicates = await _store(services, account, events, parsed) if events else (0, 0)
    ignored = ignored_names(parsed.ignored)
    _log(adapter, account, ignored, rejected)
    return WebhookResult(ingested, duplicates, ignored, rejected)


def _log(adapter: Adapter, account: Account, ignored: dict[str, int], rejected: list[FieldError]) -> None:
    if ignored:
        counts = ", ".join(f"{kind} x{count}" for kind, count in sorted(ignored.items()))
        log.info("%s webhook for account %s: ignored %s", adapter.name, account.id, counts)
    if rejected:
        reasons = "; ".join(f"{error.field}: {error.message}" for error in rejected[:5])
        log.warning(
            "%s webhook for account %s: set aside %d events: %s", adapter.name, account.id, len(rejected), reasons
        )


async def _verify(services: Services, account: Account, adapter: Adapter, delivery: Delivery, secret: str) -> None:
    """`adapter.verify`, counting each delivery it refuses against the account's limit for the
    provider (`Settings.webhook_failure_limit`); past it, deliveries are refused (429) without
    being verified, so that guessing the secret (a Postmark password, a Brevo token) gets nowhere.
    A provider retries a 429, so its own deliveries come later, not never.

    Counted in Redis, as the rate limits are, so every API process shares the count; deliveries
    checked at the same moment may all pass before their failures are counted, so a burst can
    get as many more tries as it has requests in flight. Without Redis the count is unknown:
    503, which providers retry, as for the Mailgun replay guard (see `replays.signed_once`).
    """
    limits = services.rate_limits
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
        raise RedisUnavailable() from error


async def _confirm_subscription(url: str) -> None:
    """Amazon SNS's handshake: GET the SubscribeURL of a verified SubscriptionConfirmation."""
    try:
        async with httpx.AsyncClient(timeout=SUBSCRIBE_TIMEOUT_SECONDS) as http:
            (await http.get(url)).raise_for_status()
    except httpx.HTTPError as error:
        raise SubscriptionUnconfirmed(
            f"Could not confirm the subscription at {httpx.URL(url).host}: {error or type(error).__name__}."
        ) from error


async def _store(services: Services, account: Account, events: list[NewEvent], parsed: Parsed) -> tuple[int, int]:
    """Store the events all or nothing, creating the campaigns they name on first sight; raises
    UnknownCampaigns for an event naming a campaign the delivery does not."""
    named = {event.campaign_id for event in events if event.campaign_id}
    campaigns = {id_: campaign_name(id_, name) for id_, name in parsed.campaigns.items() if id_ in named}
    return await insert_events(services.db, account.id, events, new_campaigns=campaigns)
