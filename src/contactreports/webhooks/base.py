"""What every provider's webhook adapter is: verify a delivery, then parse it into our events.

An adapter knows one provider's documented format and nothing of HTTP frameworks, the
store or arq: it gets the request's headers and raw body and gives back `EventIn`s, the
same events `POST /api/events` takes, so one validation (`ingest.to_new_events`) applies to
every way in. webhooks/receive.py does the rest (checks, storing), the API's route the
account token and the response.

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

Refused or set aside: a provider retries a refused delivery whole, then drops it, so one bad
event must not cost the others. The rule:
- `Malformed` (`400`, nothing stored) only when the body is not the provider's format at all:
  not JSON, not the documented shape (not an array where one is, an event that is not an
  object), an event whose type cannot be read (no `event` field, or not a string: without it
  nothing says whether the event is one we store or one we ignore), or a part every event of
  the delivery shares (an SES record's type, `mail` or timestamp). A Mailgun or Postmark
  delivery is one event: whatever is wrong with it may refuse the delivery, costing no other.
- Anything else wrong with one event once its type is known (a field missing or of the wrong
  type, a time that is no time or out of range): that event is set aside in `Parsed.rejected`,
  named `[position].field` as in `POST /api/events`, and the others are parsed on. `BadEvent`
  carries such a problem out of a helper; `typed_events` and `read_event` keep the rule for an
  array of events. An event of an ignored type is counted whatever its other fields hold:
  nothing else of it is read.
- The route then checks the events kept as `POST /api/events` does (webhooks/checks.py),
  naming what it refuses by `Parsed.positions`, and answers every event set aside in
  `rejected`, by position.
- A delivery of more events than `POST /api/events` takes in a request (`max_events`, from
  `Settings.max_events_per_batch`) is refused whole, as that endpoint refuses it (`at_most`),
  counted before any event is read: it is no delivery a provider makes (SendGrid batches about
  1,000 events, Brevo 500, an SES record names at most 50 recipients), and reading it would hold
  up the API process for seconds.

CPU work: verifying a large delivery (hashing its body for a signature, decoding it) and
parsing and checking its events take the API process's CPU, during which it answers nothing
else. `off_loop` runs such work in a worker thread when the delivery is large enough for that to
matter (`OFF_LOOP_BYTES`), and at once otherwise: adapters call it for what they do with the
body in `verify`, the route for `parse` and its checks.

"An event" and its position: SendGrid's and Brevo's, an element of the delivery's array and
its index (`[0]` for Brevo's single event); an SES record's, one recipient, by its index in the
record's list of recipients (`mail.destination`, `delivery.recipients`,
`bounce.bouncedRecipients`, `complaint.complainedRecipients`), the index that ends its id
`ses:<SNS MessageId>:<index>`; Mailgun's and Postmark's, the delivery itself, `[0]`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import ClassVar, ParamSpec, Protocol, TypeVar

import msgspec

from contactreports.ingest import EventIn, field_error, too_many_events
from contactreports.models import FieldError

# The longest value an error message quotes from a delivery: it is answered and logged.
MAX_SHOWN = 40
# The shortest token or password an account may choose for a provider (see `weak_secret`).
MIN_SECRET_LENGTH = 16
# A delivery of this many bytes or more is verified, parsed and checked in a worker thread (see
# `off_loop`). Below it, which takes in every one-event delivery and an array of about 100
# events, the work holds the event loop for a millisecond or two at most, and a thread hop
# (about 0.1 ms) would add a good part of that to each small delivery.
OFF_LOOP_BYTES = 16 * 1024


class Unauthorized(Exception):
    """The delivery is unsigned, badly signed or stale: answered 401, nothing stored."""


class Unavailable(Exception):
    """Something the check needs cannot be had now (the provider's certificate host is down): 503, retry."""


class Malformed(Exception):
    """The body is not the provider's documented format: answered 400, nothing stored."""


class BadEvent(Malformed):
    """One event is wrong (a field missing, not a time, out of range): see the rule above.

    An adapter of several events a delivery catches it and sets the event aside
    (`Parsed.rejected`); where the delivery is the one event (Mailgun, Postmark), it is left to
    refuse the delivery as the Malformed it also is.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.error = FieldError(field, message)


class Delivery(msgspec.Struct, frozen=True):
    """One webhook request, as the adapter sees it."""

    # Header names lower-cased.
    headers: dict[str, str]
    body: bytes
    # When it arrived, in seconds since the epoch: stale signatures are judged against it.
    received_at: float


class Parsed(msgspec.Struct, kw_only=True):
    events: list[EventIn] = msgspec.field(default_factory=list)
    # Each event's position in the delivery, as the provider numbers them (see "An event and its
    # position" above): what `rejected` names it by. Empty: the events' own order, 0, 1, ...
    positions: list[int] = msgspec.field(default_factory=list)
    # The events the adapter itself set aside, `[position].field`: see the rule above.
    rejected: list[FieldError] = msgspec.field(default_factory=list)
    # Campaigns the events name: {campaign id: the provider's name for it}.
    campaigns: dict[str, str] = msgspec.field(default_factory=dict)
    # The provider's event types we do not map onto the catalogue: {type: count}.
    ignored: dict[str, int] = msgspec.field(default_factory=dict)
    # Amazon SNS's subscription handshake: the URL to GET to confirm the subscription.
    subscribe_url: str | None = None
    # What a signature that leaves the body out (Mailgun's) signs instead, a value it may sign one
    # body with only; when the signature was made (seconds since the epoch); and for how many
    # seconds from then the adapter accepts it.
    nonce: str | None = None
    nonce_signed_at: int = 0
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


Result = TypeVar("Result")
Arguments = ParamSpec("Arguments")


async def off_loop(
    delivery: Delivery, work: Callable[Arguments, Result], *args: Arguments.args, **kwargs: Arguments.kwargs
) -> Result:
    """`work(*args, **kwargs)`, CPU work on `delivery` (a signature over its body, decoding it,
    checking its events): in a worker thread when the delivery has OFF_LOOP_BYTES or more, so the
    API process goes on answering other requests meanwhile (the thread gives up the GIL every few
    milliseconds); at once for a smaller one."""
    if len(delivery.body) < OFF_LOOP_BYTES:
        return work(*args, **kwargs)
    return await asyncio.to_thread(work, *args, **kwargs)


def at_most(count: int, limit: int) -> None:
    """Raise Malformed, saying what `POST /api/events` says of such a batch, when a delivery
    holds `count` events and may hold `limit`."""
    too_many = too_many_events(count, limit)
    if too_many is not None:
        raise Malformed(too_many.message)


class EventType(msgspec.Struct):
    """What an event of SendGrid's or Brevo's array has whatever else is wrong with it: its type."""

    event: str


_decode_event_type = msgspec.json.Decoder(EventType).decode
Event = TypeVar("Event")


def typed_events(
    parsed: Parsed,
    elements: Iterable[bytes],
    actions: Mapping[str, str],
    not_the_format: Callable[[FieldError], Malformed],
) -> Iterator[tuple[int, str, bytes]]:
    """(position, action, element) for each element of a delivery's array whose `event` is in `actions`.

    The others are counted in `parsed.ignored`, whatever else they hold. An element without an
    `event` string cannot even be counted: raises what `not_the_format` makes of that.
    """
    for position, element in enumerate(elements):
        try:
            kind = _decode_event_type(element).event
        except msgspec.ValidationError as error:
            raise not_the_format(field_error(error, prefix=f"[{position}]")) from error
        action = actions.get(kind)
        if action is None:
            parsed.ignored[kind] = parsed.ignored.get(kind, 0) + 1
            continue
        yield position, action, element


def read_event(decode: Callable[[bytes], Event], element: bytes, position: int) -> Event:
    """An element `typed_events` gave, decoded; raises BadEvent naming a field of the wrong type."""
    try:
        return decode(element)
    except msgspec.ValidationError as error:
        bad = field_error(error, prefix=f"[{position}]")
        raise BadEvent(bad.field, bad.message) from error


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


def weak_secret(secret: str, what: str) -> str | None:
    """Why `secret`, a token or password the account chose for a provider that signs nothing (Brevo's
    token, Postmark's password), will not do, or None when it will. Such a secret is all that
    stands between the webhook URL and forged events, so it must be long enough not to be guessed,
    and printable ASCII without spaces: it travels in an HTTP header, or in a URL. `what` names it
    in the answer ("a Brevo token")."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"{what} must be at least {MIN_SECRET_LENGTH} characters long, so it cannot be guessed"
    if not all("!" <= character <= "~" for character in secret):
        return f"{what} must be printable ASCII without spaces: it travels in an HTTP header"
    return None


def unix_time(value: float, field: str, per_second: int = 1) -> datetime:
    """`value` in seconds (or 1/`per_second` seconds) since the epoch as an aware UTC datetime.

    Raises BadEvent, naming `field`, when no datetime holds it.
    """
    try:
        return datetime.fromtimestamp(value / per_second, UTC)
    except (OverflowError, OSError, ValueError) as error:  # JSON's longest integers overflow the division
        raise BadEvent(field, f"{shown(str(value))} is out of range") from error


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """`text` from a delivery as a message quotes it: at most `limit` characters, the last an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
