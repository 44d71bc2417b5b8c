"""What every provider's webhook adapter is: verify a delivery, then parse it into our events.

An adapter knows one provider's documented format and nothing of HTTP frameworks, the
store or arq: it gets the request's headers and raw body and gives back `EventIn`s, the
same events `POST /api/events` takes, so one validation (`ingest.to_new_events`) applies to
every way in. The webhook route does the rest (account token, storing, the response).

Conventions every adapter keeps, so reports read the same whichever provider sent an event:
- An event's `id` is `"<provider>:<the provider's event id>"`: a redelivered webhook is then
  skipped as a duplicate, as `POST /api/events` skips a known id.
- A campaign the provider names (its campaign, tag or message stream) gets the id
  `"<provider>:<the provider's id for it>"`; `Parsed.campaigns` gives its name, and the
  route creates it on first sight.
- `details` keys, when the provider gives them: `provider` (always), `message_id`, `url`
  (clicks), `user_agent`, `ip`, `bounce_type` (`"hard"` or `"soft"`; left out where no
  receiving server bounced the message, as for a send the provider suppressed), `reason` (the
  provider's text for a bounce, block, complaint or unsubscribe), `machine_open` (true for an
  open the provider says a machine made, such as Apple Mail Privacy Protection),
  `provider_event` (the provider's own name for the event or its kind: where several of
  SendGrid's or SES's events map onto one action, on every Brevo event, a Postmark bounce's
  Type, a Mailgun failure's reason), and Postmark's `first_open` (whether an open is the
  message's first) and `origin` (who changed a subscription: Recipient, Customer or Admin).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import ClassVar, Protocol

import msgspec

from contactreports.ingest import EventIn


class Unauthorized(Exception):
    """The delivery is unsigned, badly signed or stale: answered 401, nothing stored."""


class Unavailable(Exception):
    """Something the check needs cannot be had now (the provider's certificate host is down): 503, retry."""


class Malformed(Exception):
    """The body is not the provider's documented format: answered 400, nothing stored."""


class Delivery(msgspec.Struct, frozen=True):
    """One webhook request, as the adapter sees it."""

    # Header names lower-cased.
    headers: dict[str, str]
    body: bytes
    # When it arrived, in seconds since the epoch: stale signatures are judged against it.
    received_at: float


class Parsed(msgspec.Struct, kw_only=True):
    events: list[EventIn] = msgspec.field(default_factory=list)
    # Campaigns the events name: {campaign id: the provider's name for it}.
    campaigns: dict[str, str] = msgspec.field(default_factory=dict)
    # The provider's event types we do not map onto the catalogue: {type: count}.
    ignored: dict[str, int] = msgspec.field(default_factory=dict)
    # Amazon SNS's subscription handshake: the URL to GET to confirm the subscription.
    subscribe_url: str | None = None
    # What a signature that leaves the body out (Mailgun's) signs instead, a value it may sign one
    # body with only, and for how many seconds the adapter accepts that signature.
    nonce: str | None = None
    nonce_seconds: int = 0


class Adapter(Protocol):
    # The `{provider}` of `/webhooks/{provider}/{account_token}`.
    name: ClassVar[str]
    # What the account's secret for this provider is and where to find it, for people.
    secret_help: ClassVar[str]

    def check_secret(self, secret: str) -> str | None:
        """Why `secret` cannot be this provider's secret, or None when it can."""

    async def verify(self, delivery: Delivery, secret: str) -> None:
        """Raise Unauthorized unless the provider sent `delivery` (signed with `secret`) just now."""

    def parse(self, delivery: Delivery) -> Parsed:
        """The events in a verified delivery; raise Malformed when it is not the documented format."""


def basic_auth(headers: dict[str, str]) -> tuple[str, str] | None:
    """The (user, password) of a request's `Authorization: Basic` header, None when it has none.

    Raises Unauthorized when the credentials are not base64 of UTF-8 `user:password`.
    """
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    not_basic = "The basic-auth credentials are not base64 of user:password."
    # ValueError covers bad base64 (binascii.Error), a header beyond ASCII, and credentials
    # that are not UTF-8 (UnicodeDecodeError): all of them a 401, none a 500.
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except ValueError as error:
        raise Unauthorized(not_basic) from error
    user, colon, password = decoded.partition(":")
    if not colon:
        raise Unauthorized(not_basic)
    return user, password


def unix_time(value: float, field: str, per_second: int = 1) -> datetime:
    """`value` in seconds (or 1/`per_second` seconds) since the epoch as an aware UTC datetime.

    Raises Malformed, naming `field`, when no datetime holds it.
    """
    try:
        return datetime.fromtimestamp(value / per_second, UTC)
    except (OverflowError, OSError, ValueError) as error:  # JSON's longest integers overflow the division
        raise Malformed(f"{field}: {value} is out of range") from error
