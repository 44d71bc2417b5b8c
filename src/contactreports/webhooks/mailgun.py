"""Mailgun's webhooks: one event a request, `{"signature": {...}, "event-data": {...}}`.

Documented at https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/ (the
pages "Webhook Payloads" and "Securing Webhooks").

Mapping onto the catalogue:
- accepted -> email.sent, delivered -> email.delivered, opened -> email.opened,
  clicked -> email.clicked, unsubscribed -> email.unsubscribed, complained -> email.spam_reported.
- failed with severity "permanent" -> email.bounced: Mailgun gave up on the message, or did
  not send it. `provider_event` is Mailgun's `reason` for it ("bounce", "suppress-bounce",
  "old", ...). Only a bounce gets a `bounce_type`: Mailgun's `delivery-status.bounce-type`
  ("hard" or "soft": a permanent failure can end a run of soft bounces), else "hard" for reason
  "bounce". A send Mailgun suppressed (reason `suppress-bounce`, `suppress-unsubscribe` or
  `suppress-complaint`: the address bounced, unsubscribed or complained before) gets none: no
  receiving server bounced it, as with SendGrid's `dropped`. Nor does a failure of another
  reason ("old", "generic", ...) that Mailgun does not type.
- failed with severity "temporary" is counted as ignored under Mailgun's own name for it,
  `temporary_fail`: Mailgun retries the message, so it is a delay, not a bounce; what
  finally happens arrives as delivered or as a permanent failure.
- Anything else (rejected, stored, types Mailgun adds later) is counted as ignored.

Campaign: `mailgun:tag:<tag>` for the first of the message's tags (`o:tag`, Mailgun's way to
group messages for its analytics) other than "*", which in an unsubscribed event means
"unsubscribed from every tag", not a tag of the message. Mailgun's `campaigns` belong to its
retired Campaigns feature (its examples send `[]`), and `user-variables` are free-form data
with no agreed key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, ClassVar

import msgspec

from contactreports.ingest import UNDECODABLE, EventIn
from contactreports.webhooks.base import Delivery, Malformed, Parsed, Unauthorized, off_loop, unix_time

NAME = "mailgun"
# Mailgun does not document re-signing a retried webhook (others report that a retry carries
# the first attempt's signature), and it retries for about 8 hours (7 tries, 10 minutes to 4
# hours apart). A tighter window would turn a short outage of ours into lost events.
MAX_AGE_SECONDS = 9 * 3600
# Our clock may run a little behind Mailgun's.
MAX_AHEAD_SECONDS = 5 * 60

_ACTIONS = {
    "accepted": "email.sent",
    "delivered": "email.delivered",
    "opened": "email.opened",
    "clicked": "email.clicked",
    "unsubscribed": "email.unsubscribed",
    "complained": "email.spam_reported",
}
# A failed event's `reason` for a message Mailgun did not send, the address being on a suppression
# list: suppress-bounce, suppress-unsubscribe, suppress-complaint.
_SUPPRESSED = "suppress-"
# In an unsubscribed event's tags: the recipient left every tag.
_ALL_TAGS = "*"
# Keys look like "key-" and 32 hex digits; older ones differ, so only the shape is checked.
_PLAUSIBLE_KEY = re.compile(r"[\x21-\x7e]{16,256}")


class _Signature(msgspec.Struct):
    # "1770920772" in Mailgun's example, an int in its table: both are accepted.
    timestamp: str | int
    token: str
    signature: str
    # Events of a subaccount are also signed with the primary account's key.
    parent_signature: str | None = msgspec.field(default=None, name="parent-signature")


class _Signed(msgspec.Struct):
    signature: _Signature


class _ClientInfo(msgspec.Struct):
    user_agent: str | None = msgspec.field(default=None, name="user-agent")
    # "apple", "gmail" or "generic" when Mailgun's bot detection saw a machine; empty or null when not.
    bot: str | None = None


class _DeliveryStatus(msgspec.Struct):
    message: str | None = None
    description: str | None = None
    bounce_type: str | None = msgspec.field(default=None, name="bounce-type")


class _Headers(msgspec.Struct):
    message_id: str | None = msgspec.field(default=None, name="message-id")


class _Message(msgspec.Struct):
    headers: _Headers = msgspec.field(default_factory=_Headers)


class _EventData(msgspec.Struct):
    # Only `event` and `timestamp` are in every event; the rest is checked where it is needed.
    event: str
    timestamp: float
    id: str | None = None
    recipient: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    message: _Message = msgspec.field(default_factory=_Message)
    ip: str | None = None
    url: str | None = None
    client_info: _ClientInfo = msgspec.field(default_factory=_ClientInfo, name="client-info")
    severity: str | None = None
    reason: str | None = None
    delivery_status: _DeliveryStatus = msgspec.field(default_factory=_DeliveryStatus, name="delivery-status")


class _Webhook(msgspec.Struct):
    event_data: _EventData = msgspec.field(name="event-data")
    # Always there once `verify` has passed; parse reads the events first, to name what is missing.
    signature: _Signature | None = None


_decode_signed = msgspec.json.Decoder(_Signed).decode
_decode_webhook = msgspec.json.Decoder(_Webhook).decode


class MailgunAdapter:
    name: ClassVar[str] = NAME
    secret_help: ClassVar[str] = (
        "Mailgun's HTTP webhook signing key (not the API key): in the Mailgun control panel, "
        "on the API keys page, under 'HTTP webhook signing key'."
    )

    def check_secret(self, secret: str) -> str | None:
        if _PLAUSIBLE_KEY.fullmatch(secret):
            return None
        return (
            "a Mailgun webhook signing key is 16 to 256 printable characters without spaces, "
            "such as key-0123456789abcdef0123456789abcdef; paste the key alone"
        )

    async def verify(self, delivery: Delivery, secret: str) -> None:
        try:
            signed = (await off_loop(delivery, _decode_signed, delivery.body)).signature
        except (msgspec.ValidationError, *UNDECODABLE) as error:
            raise Unauthorized(f"no Mailgun signature in the body: {error}") from error
        expected = _sign(secret, signed.timestamp, signed.token).encode()
        offered = [s.encode() for s in (signed.signature, signed.parent_signature) if s]
        # compare_digest takes the same time wherever the strings differ.
        if not any(hmac.compare_digest(expected, signature) for signature in offered):
            raise Unauthorized("the signature does not match the account's Mailgun signing key")
        signed_at = _seconds(signed.timestamp)
        if signed_at is None:
            raise Unauthorized(f"the signature's timestamp {signed.timestamp!r} is not a time")
        age = delivery.received_at - signed_at
        if not -MAX_AHEAD_SECONDS <= age <= MAX_AGE_SECONDS:
            raise Unauthorized(
                f"the signature is {age:.0f} seconds old, outside {-MAX_AHEAD_SECONDS} to {MAX_AGE_SECONDS}: "
                "stale or replayed"
            )

    def parse(self, delivery: Delivery) -> Parsed:
        try:
            webhook = _decode_webhook(delivery.body)
        except (msgspec.ValidationError, *UNDECODABLE) as error:
            raise Malformed(f"not a Mailgun webhook: {error}") from error
        # The signature leaves the body out: its token may sign this body only (see the route).
        signature = webhook.signature
        signed_once = {
            "nonce": signature.token if signature else None,
            "nonce_signed_at": (_seconds(signature.timestamp) if signature else None) or 0,
            "nonce_seconds": MAX_AGE_SECONDS + MAX_AHEAD_SECONDS,
        }
        data = webhook.event_data
        action = _action(data)
        if action is None:
            ignored = "temporary_fail" if data.event == "failed" else data.event
            return Parsed(ignored={ignored: 1}, **signed_once)
        if not data.id or not data.recipient:
            raise Malformed(f"a Mailgun {data.event} event needs event-data.id and event-data.recipient")
        tag = next((tag for tag in data.tags if tag != _ALL_TAGS), None)
        campaign_id = f"{NAME}:tag:{tag}" if tag else None
        event = EventIn(
            email=data.recipient,
            action=action,
            occurred_at=unix_time(data.timestamp, "event-data.timestamp"),
            id=f"{NAME}:{data.id}",
            campaign_id=campaign_id,
            details=_details(data),
        )
        return Parsed(events=[event], campaigns={campaign_id: tag} if tag else {}, **signed_once)


def _seconds(timestamp: str | int) -> int | None:
    """The signature's timestamp in seconds since the epoch; None when it is no number, or one too
    large to compare with the time (a float)."""
    try:
        seconds = int(timestamp)
        float(seconds)  # OverflowError past a float's range: the comparison would raise it
    except (ValueError, OverflowError):
        return None
    return seconds


def _sign(secret: str, timestamp: str | int, token: str) -> str:
    """Mailgun's signature: HMAC-SHA256 of the timestamp and the token, in hex, keyed by the signing key."""
    return hmac.new(secret.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def _action(data: _EventData) -> str | None:
    """Our action for a Mailgun event, None for one we do not map."""
    if data.event != "failed":
        return _ACTIONS.get(data.event)
    if data.severity not in ("permanent", "temporary"):
        raise Malformed(f"a Mailgun failed event's severity is permanent or temporary, not {data.severity!r}")
    return "email.bounced" if data.severity == "permanent" else None


def _details(data: _EventData) -> dict[str, Any]:
    details: dict[str, Any] = {
        "provider": NAME,
        "message_id": data.message.headers.message_id,
        "url": data.url,
        "user_agent": data.client_info.user_agent,
        "ip": data.ip,
    }
    if data.event == "opened" and data.client_info.bot:
        details["machine_open"] = True
    if data.event == "failed":
        status = data.delivery_status
        details["provider_event"] = data.reason
        details["bounce_type"] = _bounce_type(data.reason, status.bounce_type)
        # The receiving server's words when there are some; Mailgun's own reason ("bounce", "old", ...) when not.
        details["reason"] = status.message or status.description or data.reason
    return {key: value for key, value in details.items() if value}


def _bounce_type(reason: str | None, bounce_type: str | None) -> str | None:
    """A permanent failure's bounce_type: None for a send Mailgun suppressed or a failure it does not type."""
    if reason is not None and reason.startswith(_SUPPRESSED):
        return None
    if bounce_type in ("hard", "soft"):
        return bounce_type
    return "hard" if reason == "bounce" else None
