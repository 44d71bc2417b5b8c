"""Amazon SES events, as Amazon SNS posts them to an HTTP(S) subscription.

Both of SES's formats come through: event publishing records (`eventType`, from a
configuration set's SNS event destination) and the older identity notifications
(`notificationType`: Bounce, Complaint, Delivery). Formats:
https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-contents.html
https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html

- One SNS message is one SES record. A record naming several recipients (a bounce, a delivery,
  a send to several addresses) makes one event each, with ids `ses:<SNS MessageId>:<index>`;
  a record with one recipient makes `ses:<SNS MessageId>`. SNS redelivers a message with its
  MessageId, so a redelivery repeats the ids and is skipped.
- So an event is one recipient of the record, and its position (`Parsed.positions`, what
  `rejected` names) is that recipient's index in the record's list of them, the index its id
  ends with. What the recipients share (the record's type, `mail`, the type's object and its
  timestamp) not in SES's format is the whole message's problem: `Malformed`. A recipient whose
  address is missing or no string is set aside alone, as `[index].email`; one that is no
  address is refused by the route's checks, likewise.
- Open and Click records name the message's recipients, not who opened or clicked: with one
  recipient that is exact; with several they are counted in `ignored` rather than pinned on
  everyone.
- Campaign: the message's `campaign` tag (a message tag the sender sets), `ses:tag:<value>`,
  else its configuration set, `ses:configset:<name>`, so mail sent without a tag is still
  grouped by configuration set, and a tag and a configuration set of one name stay apart.
  An empty or blank value names nothing. Identity notifications carry no tags, hence no campaign.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from contactreports.config import MAX_EVENTS_PER_BATCH
from contactreports.ingest import EventIn
from contactreports.models import FieldError
from contactreports.webhooks.base import Delivery, Malformed, Parsed, Unauthorized, at_most, off_loop
from contactreports.webhooks.sns import (
    SignatureVerifier,
    check_fresh,
    check_signature,
    decode_message,
    is_subscribe_url,
)

PROVIDER = "ses"
CAMPAIGN_TAG = "campaign"
CONFIGURATION_SET_TAG = "ses:configuration-set"
TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
BOUNCE_TYPES = {"Permanent": "hard", "Transient": "soft"}


class _Record(msgspec.Struct, rename="camel"):
    pass


class Recipient(_Record):
    # Read as it comes: a recipient without an address is that recipient's event's problem, set
    # aside alone, not the record's (base.py's rule). Likewise the lists of addresses below.
    email_address: Any = None


class Mail(_Record):
    message_id: str
    timestamp: datetime
    destination: list[Any]
    tags: dict[str, list[str]] = {}


class Bounce(_Record):
    bounce_type: str
    bounced_recipients: list[Recipient]
    timestamp: datetime
    bounce_sub_type: str | None = None


class Complaint(_Record):
    complained_recipients: list[Recipient]
    timestamp: datetime
    complaint_feedback_type: str | None = None


class Delivered(_Record):
    recipients: list[Any]
    timestamp: datetime


class Opened(_Record):
    timestamp: datetime
    ip_address: str | None = None
    user_agent: str | None = None


class Clicked(_Record):
    link: str
    timestamp: datetime
    ip_address: str | None = None
    user_agent: str | None = None


class Reject(_Record):
    reason: str | None = None


class TopicPreferences(_Record):
    unsubscribe_all: bool = False


class Subscription(_Record):
    timestamp: datetime
    new_topic_preferences: TopicPreferences | None = None


class SesRecord(_Record):
    event_type: str | None = None
    notification_type: str | None = None
    # Absent from records that are not about a message (SES's AmazonSnsSubscriptionSucceeded).
    mail: Mail | None = None
    delivery: Delivered | None = None
    open: Opened | None = None
    click: Clicked | None = None
    bounce: Bounce | None = None
    reject: Reject | None = None
    complaint: Complaint | None = None
    subscription: Subscription | None = None


_decode_record = msgspec.json.Decoder(SesRecord).decode

# (email as the record gives it, occurred_at, details beyond provider and message_id)
Happening = tuple[Any, datetime, dict[str, Any]]


def _part(record: SesRecord, name: str) -> Any:
    part = getattr(record, name)
    if part is None:
        raise Malformed(f"the SES record has no {name!r} object")
    return part


def _sent(record: SesRecord, mail: Mail) -> list[Happening]:
    return [(email, mail.timestamp, {}) for email in mail.destination]


def _delivered(record: SesRecord, mail: Mail) -> list[Happening]:
    delivery: Delivered = _part(record, "delivery")
    return [(email, delivery.timestamp, {}) for email in delivery.recipients]


def _opened(record: SesRecord, mail: Mail) -> list[Happening]:
    opened: Opened = _part(record, "open")
    details = {"ip": opened.ip_address, "user_agent": opened.user_agent}
    return [(email, opened.timestamp, details) for email in _the_one_recipient(mail)]


def _clicked(record: SesRecord, mail: Mail) -> list[Happening]:
    clicked: Clicked = _part(record, "click")
    details = {"url": clicked.link, "ip": clicked.ip_address, "user_agent": clicked.user_agent}
    return [(email, clicked.timestamp, details) for email in _the_one_recipient(mail)]


def _the_one_recipient(mail: Mail) -> list[Any]:
    return mail.destination if len(mail.destination) == 1 else []


def _bounced(record: SesRecord, mail: Mail) -> list[Happening]:
    bounce: Bounce = _part(record, "bounce")
    details = {
        "bounce_type": BOUNCE_TYPES.get(bounce.bounce_type),  # Undetermined: neither
        "reason": bounce.bounce_sub_type,
        "provider_event": "Bounce",
    }
    return [(r.email_address, bounce.timestamp, details) for r in bounce.bounced_recipients]


def _rejected(record: SesRecord, mail: Mail) -> list[Happening]:
    # SES refused to send the message (it found a virus): it never reached anyone.
    reject: Reject = _part(record, "reject")
    details = {"reason": reject.reason, "provider_event": "Reject"}
    return [(email, mail.timestamp, details) for email in mail.destination]


def _complained(record: SesRecord, mail: Mail) -> list[Happening]:
    complaint: Complaint = _part(record, "complaint")
    details = {"reason": complaint.complaint_feedback_type}
    return [(r.email_address, complaint.timestamp, details) for r in complaint.complained_recipients]


def _unsubscribed(record: SesRecord, mail: Mail) -> list[Happening]:
    # SES list management; a change of topic preferences alone is not an unsubscribe.
    subscription: Subscription = _part(record, "subscription")
    preferences = subscription.new_topic_preferences
    if preferences is None or not preferences.unsubscribe_all:
        return []
    return [(email, subscription.timestamp, {}) for email in mail.destination]


# SES's type -> (our action, what it says happened). DeliveryDelay, Rendering Failure and
# SES's other notifications are not in the catalogue: they are counted in `ignored`.
MAPPING: dict[str, tuple[str, Callable[[SesRecord, Mail], list[Happening]]]] = {
    "Send": ("email.sent", _sent),
    "Delivery": ("email.delivered", _delivered),
    "Open": ("email.opened", _opened),
    "Click": ("email.clicked", _clicked),
    "Bounce": ("email.bounced", _bounced),
    "Reject": ("email.bounced", _rejected),
    "Complaint": ("email.spam_reported", _complained),
    "Subscription": ("email.unsubscribed", _unsubscribed),
}


def campaign_of(mail: Mail) -> tuple[str, str] | None:
    """(campaign id, its name): the `campaign` tag's, else the configuration set's."""
    for tag, kind in ((CAMPAIGN_TAG, "tag"), (CONFIGURATION_SET_TAG, "configset")):
        # An empty value names nothing (as Mailgun's and Brevo's empty tags): the next one, or
        # the configuration set, does.
        values = [value for value in mail.tags.get(tag, []) if value.strip()]
        if values:
            return f"{PROVIDER}:{kind}:{values[0]}", values[0]
    return None


def topic_arns(secret: str) -> list[str]:
    return [arn.strip() for arn in secret.split(",") if arn.strip()]


class SesAdapter:
    name: ClassVar[str] = "ses"
    secret_help: ClassVar[str] = (
        "The ARN of the Amazon SNS topic your SES configuration set publishes events to, such as "
        "arn:aws:sns:us-east-1:123456789012:ses-events (several: comma-separated). "
        "Messages from any other topic are refused."
    )

    def __init__(self, sns_origin_pattern: str, max_events: int = MAX_EVENTS_PER_BATCH):
        """`sns_origin_pattern`: the origin (a regular expression matched in full) that SNS's
        certificate and subscribe URLs must have: `Settings.sns_origin_pattern`. `max_events`: the
        most events (recipients) a record may make (`Settings.max_events_per_batch`)."""
        self._origin = re.compile(sns_origin_pattern)
        self._verifier = SignatureVerifier(self._origin)
        self._max_events = max_events

    def check_secret(self, secret: str) -> str | None:
        arns = topic_arns(secret)
        if not arns:
            return "give the SNS topic's ARN, such as arn:aws:sns:us-east-1:123456789012:ses-events"
        for arn in arns:
            if not TOPIC_ARN.fullmatch(arn):
                return f"{arn!r} is not an SNS topic ARN like arn:aws:sns:us-east-1:123456789012:ses-events"
        return None

    async def verify(self, delivery: Delivery, secret: str) -> None:
        try:
            message = await off_loop(delivery, decode_message, delivery.body)
        except ValueError as error:
            raise Unauthorized(str(error)) from None
        if message.TopicArn not in topic_arns(secret):
            raise Unauthorized(f"SNS topic {message.TopicArn!r} is not this account's")
        check_fresh(message, delivery.received_at)
        signature = await self._verifier.signature(message, delivery.received_at)
        await off_loop(delivery, check_signature, message, signature)

    def parse(self, delivery: Delivery) -> Parsed:
        try:
            message = decode_message(delivery.body)
        except ValueError as error:
            raise Malformed(str(error)) from None
        if message.Type == "SubscriptionConfirmation":
            return self._confirmation(message.SubscribeURL)
        if message.Type != "Notification":  # UnsubscribeConfirmation: nothing to do
            return Parsed()
        try:
            record = _decode_record(message.Message)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
            raise Malformed(f"the SNS Message is not an Amazon SES record: {error}") from None
        return _parse_record(record, message.MessageId, self._max_events)

    def _confirmation(self, subscribe_url: str | None) -> Parsed:
        if subscribe_url is None or not is_subscribe_url(subscribe_url, self._origin):
            raise Malformed(f"SubscribeURL {subscribe_url!r} is not an Amazon SNS URL")
        return Parsed(subscribe_url=subscribe_url)


def _parse_record(record: SesRecord, sns_message_id: str, max_events: int) -> Parsed:
    kind = record.event_type or record.notification_type
    if kind is None:
        raise Malformed("the SES record has neither eventType nor notificationType")
    if kind not in MAPPING:
        return Parsed(ignored={kind: 1})
    mail = _part(record, "mail")
    action, happenings = MAPPING[kind]
    found = happenings(record, mail)
    at_most(len(found), max_events)
    if not found:
        return Parsed(ignored={kind: 1})
    campaign = campaign_of(mail)
    campaign_id = campaign[0] if campaign else None
    parsed = Parsed(campaigns=dict([campaign]) if campaign else {})
    for index, (email, occurred_at, extra) in enumerate(found):
        problem = _address_problem(email, kind)
        if problem is not None:
            parsed.rejected.append(FieldError(f"[{index}].email", problem))
            continue
        parsed.events.append(
            EventIn(
                email=email,
                action=action,
                occurred_at=occurred_at,
                # The index of every recipient, kept or not: a redelivery repeats the same ids.
                id=f"{PROVIDER}:{sns_message_id}" if len(found) == 1 else f"{PROVIDER}:{sns_message_id}:{index}",
                campaign_id=campaign_id,
                details=_details(mail, extra),
            )
        )
        parsed.positions.append(index)
    return parsed


def _address_problem(email: Any, kind: str) -> str | None:
    """Why a recipient's address as the record gives it is no string, or None: it is one."""
    if email is None:
        return f"missing from a recipient of the {kind} record"
    try:
        msgspec.convert(email, str)
    except msgspec.ValidationError as error:
        return str(error)
    return None


def _details(mail: Mail, extra: dict[str, Any]) -> dict[str, Any]:
    details = {"provider": PROVIDER, "message_id": mail.message_id, **extra}
    return {key: value for key, value in details.items() if value is not None}
