"""Postmark: the webhooks of a message stream, one record a request.

Formats: https://postmarkapp.com/developer/webhooks/webhooks-overview and its page per record type
(tests/fixtures/webhooks/postmark/ holds their examples). How each record maps:

| RecordType | action | details |
| --- | --- | --- |
| Delivery | email.delivered | |
| Bounce | email.bounced | provider_event (its Type), bounce_type, reason |
| Bounce of a Type that is no failure (AutoResponder, ...) | counted as ignored, as `Bounce:<Type>` | |
| SpamComplaint | email.spam_reported | reason |
| Open | email.opened | user_agent, ip, first_open |
| Click | email.clicked | url (OriginalLink), user_agent, ip |
| SubscriptionChange, SuppressSending true | email.unsubscribed | reason (SuppressionReason), origin |
| SubscriptionChange, SuppressSending false | campaign.subscribed | origin |

Every event also has `provider` and, when the record names one, `message_id`. Other record types
are counted as ignored.

- A SubscriptionChange that lifts a suppression (SuppressSending false) is `campaign.subscribed`
  rather than ignored: otherwise a contact's report would end at "unsubscribed" while Postmark
  sends to them again.
- Campaigns: the message's Tag when it has one (`postmark:tag:<Tag>`), else its message stream
  (`postmark:stream:<MessageStream>`), each named as Postmark names it. A tag is the sender's own
  grouping of messages, the closest thing Postmark has to a campaign; every message has a stream.
- Bounce Types (https://postmarkapp.com/developer/api/bounce-api#bounce-types): `bounce_type`
  is hard when the address cannot receive mail, soft when this message was not delivered for now
  or for its content, and left out for the other failures: Unknown (an unclassified bounce);
  ManuallyDeactivated and Unconfirmed, where Postmark did not send to an address it (or the
  sender) deactivated or that never confirmed, which is no receiving server's verdict (as
  SendGrid's `dropped` and Mailgun's suppressed sends); SMTPApiError and
  TemplateRenderingFailed, where the message was never sent. The Types that are replies or
  notices rather than failures (an out-of-office AutoResponder, Subscribe, Unsubscribe,
  AddressChange, OpenRelayTest, and InboundError, which concerns mail sent to the sender) are
  counted as ignored: the message was delivered, or was not the contact's.
- Postmark documents no flag for machine opens (its docs say Apple Mail Privacy Protection causes
  opens it cannot tell apart), so `machine_open` is never set.
- Event ids: Postmark gives records no id. A record is one of a message's events for one
  recipient at one time (to the microsecond), so the id is a hash of RecordType,
  MessageID, the recipient and the time (in UTC, however it is written): a redelivery repeats all
  four, and no two records Postmark makes share them.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar

import msgspec

from contactreports.ingest import UNDECODABLE, EventIn, undecodable
from contactreports.models import control_characters_in
from contactreports.webhooks.base import (
    MIN_SECRET_LENGTH,
    Delivery,
    Malformed,
    Parsed,
    Unauthorized,
    basic_auth,
    weak_secret,
)

NAME = "postmark"
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]

# Postmark's bounce Types that are failures and their bounce_type, by Type (its examples' TypeCodes
# do not always match its table: the SpamComplaint example says 512, SpamNotification's code; the
# names do). Hard: the address itself cannot receive mail. Soft: this message was not delivered,
# for now or for its content. None: Unknown, which Postmark could not classify, and the failures
# no receiving server judged (see the docstring).
BOUNCE_TYPES: dict[str, str | None] = {
    "HardBounce": "hard",
    "BadEmailAddress": "hard",
    "Transient": "soft",
    "DnsError": "soft",
    "SoftBounce": "soft",
    "SpamNotification": "soft",
    "VirusNotification": "soft",
    "ChallengeVerification": "soft",
    "Blocked": "soft",
    "DMARCPolicy": "soft",
    "Unknown": None,
    "ManuallyDeactivated": None,
    "Unconfirmed": None,
    "SMTPApiError": None,
    "TemplateRenderingFailed": None,
}
# The Types that are replies or notices, not failures to deliver the message: counted as ignored.
# A Type Postmark adds later is taken as a failure without bounce_type, as Unknown is.
NOT_FAILURES = frozenset(
    {"AutoResponder", "Subscribe", "Unsubscribe", "AddressChange", "OpenRelayTest", "InboundError"}
)


class _Record(msgspec.Struct, kw_only=True):
    MessageID: str | None = None
    MessageStream: str | None = None
    Tag: str | None = None

    def event(self) -> tuple[str, datetime, str, dict[str, Any]]:
        """(recipient, when, action, details beyond provider and message_id)."""
        raise NotImplementedError

    def ignored(self) -> str | None:
        """The name to count the record under as ignored, when it means nothing to a report."""
        return None

    def campaign(self) -> tuple[str, str] | None:
        """(campaign id, Postmark's name for it)."""
        if self.Tag:
            return f"{NAME}:tag:{self.Tag}", self.Tag
        if self.MessageStream:
            return f"{NAME}:stream:{self.MessageStream}", self.MessageStream
        return None


class _Geo(msgspec.Struct):
    IP: str | None = None


class _Delivery(_Record, kw_only=True):
    Recipient: str
    DeliveredAt: Timestamp

    def event(self):
        return self.Recipient, self.DeliveredAt, "email.delivered", {}


class _Bounce(_Record, kw_only=True):
    Email: str
    BouncedAt: Timestamp
    Type: str = ""
    Description: str | None = None
    Details: str | None = None

    def ignored(self) -> str | None:
        return f"Bounce:{self.Type}" if self.Type in NOT_FAILURES else None

    def event(self):
        details = {
            "provider_event": self.Type,
            "bounce_type": BOUNCE_TYPES.get(self.Type),
            "reason": self.Details or self.Description,
        }
        return self.Email, self.BouncedAt, "email.bounced", details


class _SpamComplaint(_Bounce, kw_only=True):
    def event(self):
        return self.Email, self.BouncedAt, "email.spam_reported", {"reason": self.Details or self.Description}


class _Tracked(_Record, kw_only=True):
    """Open and Click records: what the tracking pixel or link learnt of the reader."""

    Recipient: str
    ReceivedAt: Timestamp
    UserAgent: str | None = None
    Geo: _Geo | None = None

    def reader(self) -> dict[str, Any]:
        return {"user_agent": self.UserAgent, "ip": self.Geo and self.Geo.IP}


class _Open(_Tracked, kw_only=True):
    FirstOpen: bool | None = None

    def event(self):
        return self.Recipient, self.ReceivedAt, "email.opened", {**self.reader(), "first_open": self.FirstOpen}


class _Click(_Tracked, kw_only=True):
    OriginalLink: str

    def event(self):
        return self.Recipient, self.ReceivedAt, "email.clicked", {"url": self.OriginalLink, **self.reader()}


class _SubscriptionChange(_Record, kw_only=True):
    Recipient: str
    ChangedAt: Timestamp
    SuppressSending: bool
    SuppressionReason: str | None = None
    Origin: str | None = None

    def event(self):
        if self.SuppressSending:
            details = {"reason": self.SuppressionReason, "origin": self.Origin}
            return self.Recipient, self.ChangedAt, "email.unsubscribed", details
        return self.Recipient, self.ChangedAt, "campaign.subscribed", {"origin": self.Origin}


class _Kind(msgspec.Struct):
    RecordType: str


RECORDS: dict[str, type[_Record]] = {
    "Delivery": _Delivery,
    "Bounce": _Bounce,
    "SpamComplaint": _SpamComplaint,
    "Open": _Open,
    "Click": _Click,
    "SubscriptionChange": _SubscriptionChange,
}


def _decode(body: bytes, shape: type) -> Any:
    try:
        return msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as error:
        raise Malformed(f"not a Postmark webhook record: {error}") from error
    except UNDECODABLE as error:
        raise Malformed(undecodable(error)) from error


def _instant(at: datetime) -> str:
    """`at` in UTC, so that one moment written with two offsets is one id; a time at the edge of
    the calendar, which UTC cannot hold, as written (the checks then set the event aside)."""
    try:
        return at.astimezone(UTC).isoformat()
    except OverflowError:
        return at.isoformat()


def _event_in(record_type: str, record: _Record) -> EventIn:
    email, at, action, details = record.event()
    identity = "\x1f".join((record_type, record.MessageID or "", email, _instant(at)))
    campaign = record.campaign()
    details = {"provider": NAME, "message_id": record.MessageID, **details}
    return EventIn(
        email=email,
        action=action,
        occurred_at=at,
        id=f"{NAME}:{hashlib.sha256(identity.encode()).hexdigest()}",
        campaign_id=campaign[0] if campaign else None,
        # Left out rather than null or empty, as `POST /api/events` callers leave out what they lack.
        details={key: value for key, value in details.items() if value not in (None, "")},
    )


class PostmarkAdapter:
    name: ClassVar[str] = NAME
    secret_help: ClassVar[str] = (
        "The basic-auth credentials Postmark sends, as username:password. Choose them (the password at least "
        f"{MIN_SECRET_LENGTH} characters without spaces; make one with "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`), then in Postmark "
        "(your server, the message stream, Webhooks) put them in the webhook URL, "
        "https://username:password@<this host>/webhooks/postmark/<token>, or in the webhook's Basic auth fields."
    )

    def check_secret(self, secret: str) -> str | None:
        username, colon, password = secret.partition(":")
        if not (colon and username and password):
            return "expected username:password (the webhook's basic-auth credentials), both non-empty"
        if control_characters_in(secret):
            return "control characters (tab, newline...) cannot be sent in basic-auth credentials"
        # Postmark signs nothing: the password is all a forger must guess, as Brevo's token is.
        return weak_secret(password, "a Postmark password")

    async def verify(self, delivery: Delivery, secret: str) -> None:
        credentials = basic_auth(delivery.headers)
        if credentials is None:
            raise Unauthorized(
                "No basic-auth credentials: give Postmark the webhook URL with them "
                "(https://username:password@host/...) or set its Basic auth fields."
            )
        # Constant time: how much of a guess matches must not show in how long the answer takes.
        if not hmac.compare_digest(":".join(credentials).encode(), secret.encode()):
            raise Unauthorized("Wrong basic-auth credentials for Postmark.")

    def parse(self, delivery: Delivery) -> Parsed:
        record_type = _decode(delivery.body, _Kind).RecordType
        record_class = RECORDS.get(record_type)
        if record_class is None:
            return Parsed(ignored={record_type: 1})
        record = _decode(delivery.body, record_class)
        ignored = record.ignored()
        if ignored is not None:
            return Parsed(ignored={ignored: 1})
        campaign = record.campaign()
        return Parsed(events=[_event_in(record_type, record)], campaigns=dict([campaign]) if campaign else {})
