"""Brevo (formerly Sendinblue): its transactional and marketing email webhooks.

Brevo posts one JSON event per request, or, for a webhook created with `batched: true`, a
JSON array of the same event objects (up to 500, every 5 minutes). Both are accepted.
Transactional and marketing events share their names (`opened`, `click`, `spam`, ...) and
differ in their fields: a marketing event names its campaign (`camp_id`, `campaign name`),
a transactional one its message (`message-id`) and the sender's `tags`.

Authenticity: Brevo signs nothing. It sends the credentials the webhook was created with:
`Authorization: Bearer <token>` for `auth: {"type": "bearer", "token": ...}` (API only), or
`Authorization: Basic ...` for credentials in the webhook's URL
(`https://user:<token>@host/...`, the only way Brevo's web app offers). The account's secret
is that token: a bearer token must equal it, a basic password must equal it (the user name
is free). Compared in constant time. As nothing signed carries a time, a stale request
cannot be told from a fresh one; a captured request replayed later carries the same event
ids, so its events are skipped as duplicates, and HTTPS keeps the token from being captured.

Event ids: Brevo gives an event no id of its own (`id` is the webhook's id, the same on
every event it sends). An event is identified by what Brevo repeats unchanged when it
retries: campaign, message id, recipient, event name, `ts_event` and clicked URL, hashed.
`unique_opened` is the first `opened` reported again (when both are ticked) and gets the
same id, so one open is stored once; likewise `unique_proxy_open` and `proxy_open`.

Times: `ts_event`, seconds since the epoch, UTC ("when the event occurred"). Not `date`
(local CET/CEST) and not `ts_epoch` (documented as milliseconds, yet seconds in most of
Brevo's examples, and for `request` the send time rather than the event's).

Campaigns: a marketing event's campaign `brevo:campaign:<camp_id>`, named by its
`campaign name`; a transactional event's first tag, `brevo:tag:<tag>` (tags are how senders
group transactional mail, and Brevo's statistics filter by them). `tags` is a list; some
events send `tag` instead, a JSON-encoded list as a string.

Mapping (see `ACTIONS`): hard and soft bounces are `email.bounced` with their
`bounce_type`. `invalid_email` (the address cannot receive mail) is `email.bounced` with
`bounce_type` "hard". `blocked` (Brevo did not send: the address is on its blocklist after an
earlier hard bounce, unsubscribe or complaint) is `email.bounced` without `bounce_type`: the
contact did not get the mail, but no server bounced it (as SendGrid's `dropped` and Mailgun's
suppressed sends). `provider_event` says which it was. `proxy_open` and
`unique_proxy_open` (an open by a mail privacy proxy such as Apple Mail Privacy Protection)
are `email.opened` with `machine_open`. Counted as ignored: `deferred` (the receiving
server asked Brevo to retry; `delivered` or a bounce follows, and reporting a failure then
would be wrong), `error` (Brevo could not send, for reasons of the sender's setup, not the
contact's), and the marketing contact events (`list_addition`, `contact_updated`,
`contact_deleted`), which describe Brevo's contact lists rather than mail. An event with an
empty `email` (Brevo's own `unique_proxy_open` example has one) names no contact: it is
counted as ignored rather than failing the whole batch.

An event of a type we store without `ts_event`, with one out of range, or with a field of the
wrong type is set aside in `rejected`, by its index in the array (`[0]` for a single event);
only a body that is no event or array of events with an `event` string is refused (base.py's
rule).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

import msgspec

from contactreports.config import MAX_EVENTS_PER_BATCH
from contactreports.ingest import UNDECODABLE, EventIn, field_error, undecodable
from contactreports.models import FieldError
from contactreports.webhooks.base import (
    MIN_SECRET_LENGTH,
    BadEvent,
    Delivery,
    Malformed,
    Parsed,
    Unauthorized,
    at_most,
    basic_auth,
    read_event,
    typed_events,
    unix_time,
    weak_secret,
)

NAME = "brevo"
# Brevo's event name -> our action, for transactional and marketing events alike.
ACTIONS: dict[str, str] = {
    "request": "email.sent",
    "delivered": "email.delivered",
    "opened": "email.opened",
    "unique_opened": "email.opened",
    "proxy_open": "email.opened",
    "unique_proxy_open": "email.opened",
    "click": "email.clicked",
    "hard_bounce": "email.bounced",
    "soft_bounce": "email.bounced",
    "blocked": "email.bounced",
    "invalid_email": "email.bounced",
    "spam": "email.spam_reported",
    "unsubscribed": "email.unsubscribed",
    # Names earlier versions of Brevo's pages give: `complaint` for `spam`, and these for the
    # marketing bounces and unsubscribe.
    "complaint": "email.spam_reported",
    "hard_bounced": "email.bounced",
    "soft_bounced": "email.bounced",
    "unsubscribe": "email.unsubscribed",
}
BOUNCE_TYPES = {
    "hard_bounce": "hard",
    "hard_bounced": "hard",
    "invalid_email": "hard",
    "soft_bounce": "soft",
    "soft_bounced": "soft",
}
MACHINE_OPENS = frozenset({"proxy_open", "unique_proxy_open"})


class BrevoEvent(msgspec.Struct):
    """The fields of Brevo's email events this adapter reads; the others are left alone."""

    event: str
    email: str | None = None
    ts_event: int | None = None
    message_id: str | None = msgspec.field(default=None, name="message-id")
    tags: list[str] | None = None
    tag: str | None = None
    # The clicked URL: `link` in transactional events, `URL` in marketing ones.
    link: str | None = None
    url: str | None = msgspec.field(default=None, name="URL")
    user_agent: str | None = None
    reason: str | None = None
    camp_id: int | None = None
    # Brevo's pages have spelt it both ways.
    campaign_name: str | None = msgspec.field(default=None, name="campaign name")
    campaign_name_snake: str | None = msgspec.field(default=None, name="campaign_name")


# One event, or an array of them; each read on its own, so that one with a field of the wrong
# type is set aside alone.
_decode_body = msgspec.json.Decoder(dict[str, msgspec.Raw] | list[msgspec.Raw]).decode
_decode_event = msgspec.json.Decoder(BrevoEvent).decode


class BrevoAdapter:
    name: ClassVar[str] = NAME
    secret_help: ClassVar[str] = (
        "The token Brevo sends with each webhook call: the bearer token set when creating the "
        'webhook through Brevo\'s API (auth: {"type": "bearer", "token": "<token>"}), or the '
        "password in the webhook URL entered in Brevo's web app "
        "(https://brevo:<token>@<host>/webhooks/brevo/<account token>). At least "
        f"{MIN_SECRET_LENGTH} characters without spaces; make one with "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`."
    )

    def __init__(self, max_events: int = MAX_EVENTS_PER_BATCH):
        """`max_events`: the most events a delivery may hold (`Settings.max_events_per_batch`)."""
        self._max_events = max_events

    def check_secret(self, secret: str) -> str | None:
        return weak_secret(secret, "a Brevo token")

    async def verify(self, delivery: Delivery, secret: str) -> None:
        token = _presented_token(delivery.headers)
        if not hmac.compare_digest(token.encode(), secret.encode()):
            raise Unauthorized("the Authorization header does not carry this account's Brevo token")

    def parse(self, delivery: Delivery) -> Parsed:
        try:
            decoded = _decode_body(delivery.body)
        except msgspec.ValidationError as error:
            raise _not_brevos(field_error(error)) from error
        except UNDECODABLE as error:
            raise Malformed(undecodable(error)) from error
        elements = decoded if isinstance(decoded, list) else [delivery.body]
        at_most(len(elements), self._max_events)
        parsed = Parsed()
        for position, action, element in typed_events(parsed, elements, ACTIONS, _not_brevos):
            try:
                _add_event(parsed, position, action, read_event(_decode_event, element, position))
            except BadEvent as error:
                parsed.rejected.append(error.error)
        return parsed


def _not_brevos(bad: FieldError) -> Malformed:
    return Malformed(f"not a Brevo email event or array of them: {bad.field}: {bad.message}")


def _presented_token(headers: dict[str, str]) -> str:
    """The token a request presents: a bearer token, or a basic-auth password."""
    credentials = basic_auth(headers)
    if credentials is not None:
        return credentials[1]
    authorization = headers.get("authorization")
    if authorization is None:
        raise Unauthorized("no Authorization header: set the Brevo webhook's bearer token or URL credentials")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    raise Unauthorized("the Authorization header must be Bearer <token> or Basic credentials")


def _add_event(parsed: Parsed, position: int, action: str, event: BrevoEvent) -> None:
    """Add the event, or count it as ignored; raises BadEvent for one to set aside."""
    if not event.email:
        name = f"{event.event} without email"
        parsed.ignored[name] = parsed.ignored.get(name, 0) + 1
        return
    if event.ts_event is None:
        raise BadEvent(f"[{position}].ts_event", f"missing from a Brevo {event.event!r} event")
    occurred_at = unix_time(event.ts_event, f"[{position}].ts_event")
    campaign = _campaign_of(event)
    if campaign is not None:
        parsed.campaigns[campaign[0]] = campaign[1]
    parsed.events.append(
        EventIn(
            email=event.email,
            action=action,
            occurred_at=occurred_at,
            id=_event_id(event),
            campaign_id=campaign[0] if campaign else None,
            details=_details_of(event),
        )
    )
    parsed.positions.append(position)


def _event_id(event: BrevoEvent) -> str:
    # JSON keeps the parts apart whatever characters they hold.
    parts = msgspec.json.encode(
        [
            event.camp_id,
            event.message_id,
            event.email,
            event.event.removeprefix("unique_"),
            event.ts_event,
            event.link or event.url,
        ]
    )
    return f"{NAME}:{hashlib.sha256(parts).hexdigest()[:32]}"


def _campaign_of(event: BrevoEvent) -> tuple[str, str] | None:
    """(campaign id, name) of the campaign or first tag the event names, if any."""
    if event.camp_id is not None:
        name = (event.campaign_name or event.campaign_name_snake or "").strip()
        return f"{NAME}:campaign:{event.camp_id}", name or f"Brevo campaign {event.camp_id}"
    tags = _tags_of(event)
    return (f"{NAME}:tag:{tags[0]}", tags[0]) if tags else None


def _tags_of(event: BrevoEvent) -> list[str]:
    if event.tags:
        tags = event.tags
    elif event.tag:
        # `"tag": "[\"transactionalTag\"]"`: a list as JSON text; a plain string is one tag.
        try:
            tags = msgspec.json.decode(event.tag, type=list[str])
        except msgspec.DecodeError:
            tags = [event.tag]
    else:
        tags = []
    return [tag for tag in tags if tag.strip()]


def _details_of(event: BrevoEvent) -> dict[str, object]:
    # provider_event always: most actions gather several of Brevo's names (unique and proxy
    # opens, bounces, blocks, older spellings), and one rule reads simpler than exceptions.
    details: dict[str, object] = {"provider": NAME, "provider_event": event.event}
    optional = {
        "message_id": event.message_id,
        "url": event.link or event.url,
        "user_agent": event.user_agent,
        "bounce_type": BOUNCE_TYPES.get(event.event),
        "reason": event.reason,
    }
    details.update({key: value for key, value in optional.items() if value})
    if event.event in MACHINE_OPENS:
        details["machine_open"] = True
    return details
