"""SendGrid's Event Webhook: a JSON array of events, signed by the Signed Event Webhook.

Formats: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event
Signing: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
(tests/fixtures/webhooks/sendgrid/ holds their examples). How each event maps:

| event | action | details |
| --- | --- | --- |
| processed | email.sent | |
| delivered | email.delivered | |
| bounce | email.bounced | provider_event, bounce_type (its `type`), reason |
| dropped | email.bounced | provider_event, reason |
| open | email.opened | user_agent, ip, machine_open (`sg_machine_open` true) |
| click | email.clicked | url, user_agent, ip |
| spamreport | email.spam_reported | |
| unsubscribe | email.unsubscribed | provider_event |
| group_unsubscribe | email.unsubscribed | provider_event, user_agent, ip |
| group_resubscribe | campaign.subscribed | user_agent, ip |

Every event also has `provider` and, when SendGrid gives it, `message_id` (`sg_message_id`); its
id is `sendgrid:<sg_event_id>`. Other events are counted as ignored.

- `deferred` is ignored: a retry still under way, repeated at every attempt, whose outcome
  arrives as `delivered` or `bounce`. So is `account_status_change`, which names no recipient.
- `dropped` is a bounce: SendGrid refused to send (a suppressed address, spam content, ...), so
  the contact never got the message, and this event is the only one that says why. It gets no
  `bounce_type`: no receiving server bounced it.
- A bounce's `type` is hard (`bounce`) or soft (`blocked`), as SendGrid defines them;
  `bounce_classification` (Invalid Address, Reputation, ...) is added to `reason`.
- `machine_open` only when SendGrid says true: a false flag is the usual open, nothing to flag.
- `ip` and `user_agent` only from the events where they are the recipient's: on delivery events
  SendGrid's `ip` is its own sending address.
- Campaign: the Single Send, else the Marketing Campaign, else the message's category when it
  has exactly one (transactional mail is grouped by category; of several, none is the
  campaign). Ids are `sendgrid:singlesend:<id>`, `sendgrid:campaign:<id>` and
  `sendgrid:category:<name>`, so a category named like a campaign id cannot take its place.
- An event without `sg_event_id` (some of SendGrid's examples) is stored without an id.
- An event of a type we store that lacks `email` or `timestamp`, has a timestamp that is no
  time, or a field of the wrong type is set aside in `rejected` by its index in the array;
  only a body that is no array of objects with an `event` string is refused (base.py's rule).
"""

from __future__ import annotations

import base64
from collections import Counter
from datetime import datetime
from typing import Any, ClassVar

import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from contactreports.config import MAX_EVENTS_PER_BATCH
from contactreports.ingest import MAX_CAMPAIGN_ID, UNDECODABLE, EventIn, field_error, undecodable
from contactreports.models import FieldError
from contactreports.webhooks.base import (
    BadEvent,
    Delivery,
    Malformed,
    Parsed,
    Unauthorized,
    at_most,
    off_loop,
    read_event,
    shown,
    typed_events,
    unix_time,
)

NAME = "sendgrid"
SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
# SendGrid names no tolerance. Five minutes either way (clock skew), as the SES adapter allows
# SNS: a replay inside it is harmless, its events' ids are already stored.
MAX_SKEW_SECONDS = 300
ACTIONS = {
    "processed": "email.sent",
    "delivered": "email.delivered",
    "bounce": "email.bounced",
    "dropped": "email.bounced",
    "open": "email.opened",
    "click": "email.clicked",
    "spamreport": "email.spam_reported",
    "unsubscribe": "email.unsubscribed",
    "group_unsubscribe": "email.unsubscribed",
    "group_resubscribe": "campaign.subscribed",
}
# Actions several SendGrid events map onto: their details name the event.
SHARED_ACTIONS = {action for action, events in Counter(ACTIONS.values()).items() if events > 1}
# The events whose `ip` and `useragent` are the recipient's; on delivery events `ip` is SendGrid's.
RECIPIENT_EVENTS = {"open", "click", "group_unsubscribe", "group_resubscribe"}
BOUNCE_TYPES = {"bounce": "hard", "blocked": "soft"}
# Seconds this large would be past the year 5000: SendGrid's Single Send example gives
# milliseconds, so such a timestamp is read as milliseconds.
MILLISECONDS_FROM = 10**11
# Longer digit strings are no time we keep, and Python refuses to read over 4,300 digits.
MAX_DIGITS = 20
SIGNATURE_ALGORITHM = ec.ECDSA(hashes.SHA256())


class SendGridEvent(msgspec.Struct):
    """The fields of an event that we read; the rest (custom arguments among them) are skipped."""

    event: str
    email: str | None = None
    # Unix seconds; SendGrid's field table calls it a string, its examples give a number.
    timestamp: int | str | None = None
    sg_event_id: str | None = None
    sg_message_id: str | None = None
    useragent: str | None = None
    ip: str | None = None
    url: str | None = None
    reason: str | None = None
    type: str | None = None
    bounce_classification: str | None = None
    sg_machine_open: bool | None = None
    category: str | list[str] | None = None
    marketing_campaign_id: int | str | None = None
    marketing_campaign_name: str | None = None
    singlesend_id: str | None = None
    singlesend_name: str | None = None


# Each event is read on its own, so that one with a field of the wrong type is set aside alone.
_decode_array = msgspec.json.Decoder(list[msgspec.Raw]).decode
_decode_event = msgspec.json.Decoder(SendGridEvent).decode


class SendGridAdapter:
    name: ClassVar[str] = NAME
    secret_help: ClassVar[str] = (
        "The Signed Event Webhook's verification key (base64, starting MFkw): in SendGrid, Settings > "
        "Mail Settings > Event Webhooks, edit the webhook, turn on Enable Signed Event Webhook under "
        "Security features, save, then edit it again and copy the key."
    )

    def __init__(self, max_events: int = MAX_EVENTS_PER_BATCH):
        """`max_events`: the most events a delivery may hold (`Settings.max_events_per_batch`)."""
        self._max_events = max_events

    def check_secret(self, secret: str) -> str | None:
        try:
            public_key(secret)
        except ValueError as error:
            return str(error)
        return None

    async def verify(self, delivery: Delivery, secret: str) -> None:
        signature = delivery.headers.get(SIGNATURE_HEADER)
        timestamp = delivery.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Unauthorized(
                "unsigned: no X-Twilio-Email-Event-Webhook-Signature and -Timestamp headers "
                "(turn on the Signed Event Webhook in SendGrid)"
            )
        signed_at = _digits(timestamp)
        if signed_at is None:
            raise Unauthorized(f"X-Twilio-Email-Event-Webhook-Timestamp {timestamp!r} is not unix seconds")
        if abs(delivery.received_at - signed_at) > MAX_SKEW_SECONDS:
            raise Unauthorized(f"stale: signed at {timestamp}, more than {MAX_SKEW_SECONDS} s from now")
        try:
            key = public_key(secret)
        except ValueError as error:
            raise Unauthorized(f"the account's SendGrid verification key is unusable: {error}") from error
        await off_loop(delivery, _check_signature, key, signature, timestamp, delivery.body)

    def parse(self, delivery: Delivery) -> Parsed:
        try:
            elements = _decode_array(delivery.body)
        except msgspec.ValidationError as error:
            raise _not_sendgrids(field_error(error)) from error
        except UNDECODABLE as error:
            raise Malformed(f"body: {undecodable(error)}") from error
        at_most(len(elements), self._max_events)
        parsed = Parsed()
        for position, action, element in typed_events(parsed, elements, ACTIONS, _not_sendgrids):
            try:
                event = read_event(_decode_event, element, position)
                campaign_id, campaign_name = _campaign(event)
                event_in = _event_in(position, event, action, campaign_id)
            except BadEvent as error:
                parsed.rejected.append(error.error)
                continue
            if campaign_id is not None:
                parsed.campaigns[campaign_id] = campaign_name
            parsed.events.append(event_in)
            parsed.positions.append(position)
        return parsed


def _check_signature(key: ec.EllipticCurvePublicKey, signature: str, timestamp: str, body: bytes) -> None:
    """Raise Unauthorized unless `signature` (base64) is the key's over `timestamp` and `body`."""
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, SIGNATURE_ALGORITHM)
    # ValueError: not base64 (binascii.Error), or characters beyond ASCII in the header.
    except (InvalidSignature, ValueError) as error:
        raise Unauthorized("the signature does not match this body, timestamp and verification key") from error


def _not_sendgrids(bad: FieldError) -> Malformed:
    return Malformed(f"not SendGrid's Event Webhook format (a JSON array of events): {bad.field}: {bad.message}")


def public_key(secret: str) -> ec.EllipticCurvePublicKey:
    """The verification key SendGrid shows (base64 of a DER public key); ValueError says why it is not one."""
    try:
        der = base64.b64decode(secret.strip(), validate=True)
    except ValueError as error:  # binascii.Error, or characters beyond ASCII
        raise ValueError("not base64: SendGrid's verification key is base64 text starting MFkw") from error
    try:
        key = load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ValueError("not a public key: copy the whole verification key SendGrid shows") from error
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        raise ValueError("not an ECDSA P-256 public key, which SendGrid's verification key is")
    return key


def _event_in(index: int, event: SendGridEvent, action: str, campaign_id: str | None) -> EventIn:
    if not event.email:
        raise BadEvent(f"[{index}].email", f"missing from a {event.event!r} event")
    if event.timestamp is None:
        raise BadEvent(f"[{index}].timestamp", f"missing from a {event.event!r} event")
    return EventIn(
        email=event.email,
        action=action,
        occurred_at=_occurred_at(index, event.timestamp),
        id=f"{NAME}:{event.sg_event_id}" if event.sg_event_id else None,
        campaign_id=campaign_id,
        details=_details(event, action),
    )


def _digits(text: str) -> int | None:
    """The number `text` writes in decimal digits, if it is one."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS else None


def _occurred_at(index: int, timestamp: int | str) -> datetime:
    seconds = _digits(timestamp) if isinstance(timestamp, str) else timestamp
    if seconds is None:
        raise BadEvent(f"[{index}].timestamp", f"{shown(repr(timestamp))} is not unix seconds")
    return unix_time(seconds, f"[{index}].timestamp", per_second=1000 if seconds >= MILLISECONDS_FROM else 1)


def _details(event: SendGridEvent, action: str) -> dict[str, Any]:
    details: dict[str, Any] = {"provider": NAME, "message_id": event.sg_message_id}
    if event.event in RECIPIENT_EVENTS:
        details.update(user_agent=event.useragent, ip=event.ip)
    if event.event == "click":
        details["url"] = event.url
    if event.event == "open" and event.sg_machine_open:
        details["machine_open"] = True
    if event.event == "bounce":
        details["bounce_type"] = BOUNCE_TYPES.get(event.type or "")
    if action == "email.bounced":
        details["reason"] = _reason(event)
    if action in SHARED_ACTIONS:
        details["provider_event"] = event.event
    return {key: value for key, value in details.items() if value is not None}


def _reason(event: SendGridEvent) -> str | None:
    if event.reason and event.bounce_classification:
        return f"{event.reason} ({event.bounce_classification})"
    return event.reason or event.bounce_classification


def _campaign(event: SendGridEvent) -> tuple[str, str] | tuple[None, None]:
    """(campaign id, its name) for the campaign the event belongs to, or (None, None)."""
    if event.singlesend_id:
        return f"{NAME}:singlesend:{event.singlesend_id}", event.singlesend_name or event.singlesend_id
    if event.marketing_campaign_id is not None:
        campaign = str(event.marketing_campaign_id)
        return f"{NAME}:campaign:{campaign}", event.marketing_campaign_name or campaign
    categories = [event.category] if isinstance(event.category, str) else event.category or []
    if len(categories) == 1 and categories[0]:
        campaign_id = f"{NAME}:category:{categories[0]}"
        # A longer category (SendGrid allows 255 characters) names no campaign.
        if len(campaign_id) <= MAX_CAMPAIGN_ID:
            return campaign_id, categories[0]
    return None, None
