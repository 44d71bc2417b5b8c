"""The Amazon SES adapter: AWS's documented examples, re-signed by a local stand-in for SNS, parsed
and verified by the adapter, then posted to a live API and read back through contact reports."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ApiAccount, Process, service_env, start_api
from contactreports.config import Settings
from contactreports.ingest import EventIn
from contactreports.models import FieldError
from contactreports.store.database import Database
from contactreports.webhooks import sns as sns_module
from contactreports.webhooks.base import Delivery, Malformed, Parsed, Unauthorized, Unavailable
from contactreports.webhooks.ses import SesAdapter
from contactreports.webhooks.sns import check_certificate_url, fetch_certificate, signing_names
from helpers import in_order, report_for, stored, too_many_events, webhook_url
from local_sns import (
    CERT,
    ENDLESS,
    EXPIRED,
    FAILING,
    HUGE,
    SAN_ELSEWHERE,
    SLOW,
    SLOW_SECONDS,
    SUBJECT_ONLY,
    UNNAMED,
    LocalSns,
    pem_path,
)

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks" / "ses"
# The topic of AWS's examples.
TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"
SNS_MESSAGE_ID = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
EVENT_MAIL = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
CONFIG_SET = {"ses:configset:ConfigSet": "ConfigSet"}
# The origin SNS's URLs must have, unless a test trusts its local SNS instead.
AMAZON = Settings().sns_origin_pattern
# The time of every identity notification example.
NOTICE_AT = "2016-01-27T14:59:38.237Z"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def ses_notification(record: dict[str, Any], message_id: str = SNS_MESSAGE_ID) -> dict[str, Any]:
    """SNS's documented Notification example carrying an SES record, as SES publishes it (no Subject)."""
    message = fixture("sns-notification.json")
    del message["Subject"]
    return {**message, "MessageId": message_id, "Message": json.dumps(record)}


def delivery(message: dict[str, Any]) -> Delivery:
    return Delivery(headers={}, body=json.dumps(message).encode(), received_at=time.time())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def event(
    action: str,
    email: str,
    occurred_at: str,
    *,
    id: str = f"ses:{SNS_MESSAGE_ID}",
    mail: str = EVENT_MAIL,
    campaign: str | None = "ses:configset:ConfigSet",
    **details: Any,
) -> EventIn:
    """The event we expect; by default in the campaign of the event examples' configuration set."""
    return EventIn(email, action, at(occurred_at), id, campaign, {"provider": "ses", "message_id": mail, **details})


def notice(action: str, email: str, mail: str, **details: Any) -> EventIn:
    """The event we expect from an identity notification: no tags, so no campaign."""
    return event(action, email, NOTICE_AT, mail=mail, campaign=None, **details)


IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) AppleWebKit/603.3.8 (KHTML, like Gecko) Mobile/14G60"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.90 Safari/537.36"
)
EXAMPLES = {
    "event-bounce.json": in_order(
        events=[
            event(
                "email.bounced",
                "recipient@example.com",
                "2017-08-05T00:41:02.669Z",
                bounce_type="hard",
                reason="General",
                provider_event="Bounce",
            )
        ],
        campaigns=CONFIG_SET,
    ),
    "event-complaint.json": in_order(
        events=[event("email.spam_reported", "recipient@example.com", "2017-08-05T00:41:02.669Z", reason="abuse")],
        campaigns=CONFIG_SET,
    ),
    "event-delivery.json": in_order(
        events=[event("email.delivered", "recipient@example.com", "2016-10-19T23:21:04.133Z")], campaigns=CONFIG_SET
    ),
    "event-send.json": in_order(
        events=[event("email.sent", "recipient@example.com", "2016-10-14T05:02:16.645Z")], campaigns=CONFIG_SET
    ),
    # AWS's example was rejected on its way to sender@example.com.
    "event-reject.json": in_order(
        events=[
            event(
                "email.bounced",
                "sender@example.com",
                "2016-10-14T17:38:15.211Z",
                reason="Bad content",
                provider_event="Reject",
            )
        ],
        campaigns=CONFIG_SET,
    ),
    "event-open.json": in_order(
        events=[
            event(
                "email.opened", "recipient@example.com", "2017-08-09T22:00:19.652Z", ip="192.0.2.1", user_agent=IPHONE
            )
        ],
        campaigns=CONFIG_SET,
    ),
    "event-click.json": in_order(
        events=[
            event(
                "email.clicked",
                "recipient@example.com",
                "2017-08-09T23:51:25.570Z",
                url="http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
                ip="192.0.2.1",
                user_agent=CHROME,
            )
        ],
        campaigns=CONFIG_SET,
    ),
    "event-rendering-failure.json": Parsed(ignored={"Rendering Failure": 1}),
    "event-delivery-delay.json": Parsed(ignored={"DeliveryDelay": 1}),
    "event-subscription.json": in_order(
        events=[
            event(
                "email.unsubscribed",
                "recipient@example.com",
                "2022-01-12T01:00:17.910Z",
                mail="EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
            )
        ],
        campaigns=CONFIG_SET,
    ),
    "notification-bounce-with-dsn.json": in_order(
        events=[
            notice(
                "email.bounced",
                "jane@example.com",
                "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
                bounce_type="hard",
                reason="General",
                provider_event="Bounce",
            )
        ]
    ),
    # Two bounced recipients: one event each, told apart by their index.
    "notification-bounce-without-dsn.json": in_order(
        events=[
            event(
                "email.bounced",
                email,
                NOTICE_AT,
                id=f"ses:{SNS_MESSAGE_ID}:{index}",
                mail="00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000",
                campaign=None,
                bounce_type="hard",
                reason="General",
                provider_event="Bounce",
            )
            for index, email in enumerate(["jane@example.com", "richard@example.com"])
        ]
    ),
    "notification-complaint-with-feedback.json": in_order(
        events=[
            notice(
                "email.spam_reported",
                "richard@example.com",
                "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
                reason="abuse",
            )
        ]
    ),
    "notification-complaint-without-feedback.json": in_order(
        events=[
            notice(
                "email.spam_reported",
                "richard@example.com",
                "0000013786031775-163e3910-53eb-4c8e-a04a-f29debf88a84-000000",
            )
        ]
    ),
    "notification-delivery.json": in_order(
        events=[
            notice(
                "email.delivered", "jane@example.com", "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000"
            )
        ]
    ),
}


@pytest.fixture(scope="module")
def sns() -> Iterator[LocalSns]:
    local = LocalSns()
    yield local
    local.close()


@pytest.fixture
def adapter(sns: LocalSns) -> SesAdapter:
    """A fresh adapter (so an empty certificate cache) trusting the local SNS."""
    return SesAdapter(sns.origin_pattern)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_documented_ses_record_parses_into_exactly_its_events(name: str) -> None:
    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(fixture(name))))

    assert parsed == EXAMPLES[name]


def test_every_ses_fixture_is_checked() -> None:
    records = {path.name for path in FIXTURES.glob("*.json") if not path.name.startswith("sns-")}

    assert records == set(EXAMPLES)


def test_a_subscription_confirmation_gives_its_subscribe_url() -> None:
    message = fixture("sns-subscription-confirmation.json")

    parsed = SesAdapter(AMAZON).parse(delivery(message))

    assert parsed == Parsed(subscribe_url=message["SubscribeURL"])


def test_a_subscribe_url_off_amazon_sns_is_malformed() -> None:
    message = {**fixture("sns-subscription-confirmation.json"), "SubscribeURL": "https://attacker.example/?Action=x"}

    with pytest.raises(Malformed, match="SubscribeURL 'https://attacker.example/.Action=x' is not an Amazon SNS URL"):
        SesAdapter(AMAZON).parse(delivery(message))


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.s3.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        "https://sns.s3-us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        "https://sns.us-west-2.amazonaws.com.attacker.example/?Action=ConfirmSubscription&Token=x",
        "http://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        "https://sns.us-west-2.amazonaws.com/confirm?Action=ConfirmSubscription&Token=x",
        "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&Token=x",
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x#y",
        "https://user@sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x",
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x\x00",
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x\ty",
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=x y",
        "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&Token=\u00e9",
        "https://sns.us-west-2.amazonaws.com\\@attacker.example/?Action=ConfirmSubscription&Token=x",
    ],
)
def test_a_subscribe_url_not_shaped_as_amazon_snss_is_malformed(url: str) -> None:
    message = {**fixture("sns-subscription-confirmation.json"), "SubscribeURL": url}

    with pytest.raises(Malformed, match="is not an Amazon SNS URL"):
        SesAdapter(AMAZON).parse(delivery(message))


def test_an_unsubscribe_confirmation_gives_nothing() -> None:
    parsed = SesAdapter(AMAZON).parse(delivery(fixture("sns-unsubscribe-confirmation.json")))

    assert parsed == Parsed()


def test_a_notification_that_is_not_an_ses_record_is_malformed() -> None:
    # SNS's own example: "Hello world!" published to the topic.
    with pytest.raises(Malformed, match="the SNS Message is not an Amazon SES record"):
        SesAdapter(AMAZON).parse(delivery(fixture("sns-notification.json")))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"mail": fixture("event-send.json")["mail"]}, "the SES record has neither eventType nor notificationType"),
        ({**fixture("event-bounce.json"), "bounce": None}, "the SES record has no 'bounce' object"),
        ({"eventType": "Send"}, "the SES record has no 'mail' object"),
        (
            {**fixture("event-send.json"), "mail": {"messageId": 7}},
            "Expected `str`, got `int` - at `\\$.mail.messageId`",
        ),
    ],
)
def test_a_record_not_in_ses_format_is_malformed(record: dict[str, Any], message: str) -> None:
    with pytest.raises(Malformed, match=message):
        SesAdapter(AMAZON).parse(delivery(ses_notification(record)))


def test_a_body_that_is_not_an_sns_message_is_malformed() -> None:
    with pytest.raises(Malformed, match="not an Amazon SNS message"):
        SesAdapter(AMAZON).parse(Delivery(headers={}, body=b"[1, 2]", received_at=time.time()))


def test_a_campaign_tag_names_the_campaign_before_the_configuration_set() -> None:
    record = fixture("event-send.json")
    record["mail"]["tags"]["campaign"] = ["Spring sale"]

    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(record)))

    assert ([e.campaign_id for e in parsed.events], parsed.campaigns) == (
        ["ses:tag:Spring sale"],
        {"ses:tag:Spring sale": "Spring sale"},
    )


def test_a_campaign_tag_and_a_configuration_set_of_one_name_are_two_campaigns() -> None:
    tagged = fixture("event-send.json")
    tagged["mail"]["tags"]["campaign"] = ["ConfigSet"]
    untagged = fixture("event-send.json")

    campaigns = [SesAdapter(AMAZON).parse(delivery(ses_notification(r))).campaigns for r in (tagged, untagged)]

    assert campaigns == [{"ses:tag:ConfigSet": "ConfigSet"}, {"ses:configset:ConfigSet": "ConfigSet"}]


@pytest.mark.parametrize("values", [[""], [" ", "Spring sale"]])
def test_an_empty_campaign_tag_names_no_campaign(values: list[str]) -> None:
    record = fixture("event-send.json")
    record["mail"]["tags"]["campaign"] = values

    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(record)))

    expected = {"ses:tag:Spring sale": "Spring sale"} if "Spring sale" in values else CONFIG_SET
    assert ([e.campaign_id for e in parsed.events], parsed.campaigns) == ([*expected], expected)


def test_a_recipient_without_an_address_is_set_aside_by_its_index_and_the_others_kept() -> None:
    record = fixture("notification-bounce-without-dsn.json")
    recipients = record["bounce"]["bouncedRecipients"]
    record["bounce"]["bouncedRecipients"] = [{"status": "5.0.0"}, recipients[0], {"emailAddress": 7}, recipients[1]]

    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(record)))

    assert [(e.email, e.id) for e in parsed.events] == [
        ("jane@example.com", f"ses:{SNS_MESSAGE_ID}:1"),
        ("richard@example.com", f"ses:{SNS_MESSAGE_ID}:3"),
    ]
    assert (parsed.positions, parsed.rejected) == (
        [1, 3],
        [
            FieldError("[0].email", "missing from a recipient of the Bounce record"),
            FieldError("[2].email", "Expected `str`, got `int`"),
        ],
    )


def test_a_send_to_several_addresses_is_sent_to_each() -> None:
    record = fixture("event-send.json")
    record["mail"]["destination"] = ["ann@example.com", "bob@example.com"]

    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(record)))

    assert [(e.email, e.id) for e in parsed.events] == [
        ("ann@example.com", f"ses:{SNS_MESSAGE_ID}:0"),
        ("bob@example.com", f"ses:{SNS_MESSAGE_ID}:1"),
    ]


@pytest.mark.parametrize("name", ["event-open.json", "event-click.json"])
def test_an_open_or_click_of_mail_to_several_addresses_is_not_pinned_on_anyone(name: str) -> None:
    record = fixture(name)
    record["mail"]["destination"] = ["ann@example.com", "bob@example.com"]

    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(record)))

    assert parsed == Parsed(ignored={record["eventType"]: 1})


def test_a_change_of_topic_preferences_alone_is_not_an_unsubscribe() -> None:
    record = fixture("event-subscription.json")
    record["subscription"]["newTopicPreferences"]["unsubscribeAll"] = False

    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(record)))

    assert parsed == Parsed(ignored={"Subscription": 1})


def test_a_transient_bounce_is_soft() -> None:
    record = fixture("event-bounce.json")
    record["bounce"].update(bounceType="Transient", bounceSubType="MailboxFull")

    [bounced] = SesAdapter(AMAZON).parse(delivery(ses_notification(record))).events

    assert bounced.details == {
        "provider": "ses",
        "message_id": EVENT_MAIL,
        "bounce_type": "soft",
        "reason": "MailboxFull",
        "provider_event": "Bounce",
    }


def test_ses_telling_that_the_topic_works_is_ignored() -> None:
    # What SES publishes when an identity's notifications are pointed at a topic: no mail in it.
    record = {"notificationType": "AmazonSnsSubscriptionSucceeded", "message": "You have successfully subscribed."}

    parsed = SesAdapter(AMAZON).parse(delivery(ses_notification(record)))

    assert parsed == Parsed(ignored={"AmazonSnsSubscriptionSucceeded": 1})


SNS_EXAMPLES = ["sns-subscription-confirmation.json", "sns-notification.json", "sns-unsubscribe-confirmation.json"]


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("name", SNS_EXAMPLES)
async def test_a_message_signed_by_sns_is_verified(sns: LocalSns, adapter: SesAdapter, name: str, version: str) -> None:
    await adapter.verify(delivery(sns.sign(fixture(name), version)), TOPIC)


async def test_an_ses_notification_signed_by_sns_is_verified(sns: LocalSns, adapter: SesAdapter) -> None:
    message = sns.sign(ses_notification(fixture("event-bounce.json")), "2")

    await adapter.verify(delivery(message), f"arn:aws:sns:us-east-1:123456789012:other, {TOPIC}")


async def test_the_certificate_is_fetched_once(sns: LocalSns) -> None:
    adapter = SesAdapter(sns.origin_pattern)
    once = pem_path("once")
    sns.files[once] = sns.files[CERT]

    for name in SNS_EXAMPLES:
        await adapter.verify(delivery(sns.sign(fixture(name), cert=once)), TOPIC)

    assert sns.requests[once] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", "Goodbye world!"),
        ("Subject", "My Second Message"),
        ("MessageId", "00000000-fdea-4c2c-8f9d-bdfb0c7bf324"),
        ("Type", "SubscriptionConfirmation"),
    ],
)
async def test_a_tampered_message_is_unauthorized(sns: LocalSns, adapter: SesAdapter, field: str, value: str) -> None:
    message = {**sns.sign(fixture("sns-notification.json")), field: value}

    with pytest.raises(Unauthorized):
        await adapter.verify(delivery(message), TOPIC)


async def test_a_tampered_ses_record_is_unauthorized(sns: LocalSns, adapter: SesAdapter) -> None:
    signed = sns.sign(ses_notification(fixture("event-delivery.json")), "2")
    forged = fixture("event-delivery.json")
    forged["delivery"]["recipients"] = ["victim@example.com"]

    with pytest.raises(Unauthorized, match="the SNS signature does not match the message"):
        await adapter.verify(delivery({**signed, "Message": json.dumps(forged)}), TOPIC)


async def test_a_message_from_another_topic_is_unauthorized(sns: LocalSns, adapter: SesAdapter) -> None:
    message = sns.sign(fixture("sns-notification.json"))

    with pytest.raises(
        Unauthorized, match="SNS topic 'arn:aws:sns:us-west-2:123456789012:MyTopic' is not this account's"
    ):
        await adapter.verify(delivery(message), "arn:aws:sns:us-west-2:123456789012:OtherTopic")


@pytest.mark.parametrize(
    "cert_url",
    [
        # The same server under another name: only the configured origin is trusted.
        "http://localhost:{port}{cert}",
        "https://sns.us-west-2.amazonaws.com.attacker.example{cert}",
        "https://attacker.example/sns.us-west-2.amazonaws.com{cert}",
        "http://sns.us-west-2.amazonaws.com{cert}",
        "{origin}/cert.txt",
        # S3 hosts, which a bucket named "sns" would have: not SNS's regional hosts.
        "https://sns.s3.amazonaws.com{cert}",
        "https://sns.s3-us-west-2.amazonaws.com{cert}",
        "https://sns.s3-website-us-east-1.amazonaws.com{cert}",
        "https://sns.s3.us-west-2.amazonaws.com{cert}",
        # SNS's host, but not a path SNS serves its certificates at.
        "https://sns.us-west-2.amazonaws.com/cert.pem",
        "{origin}/cert.pem",
        "{origin}/SimpleNotificationService-notahash.pem",
        "{origin}/folder{cert}",
        "{origin}{cert}?download=1",
        "{origin}{cert}#top",
        "https://user@sns.us-west-2.amazonaws.com{cert}",
        "https://sns.us-west-2.amazonaws.com:8443{cert}",
        # Characters no URL has; httpx refuses some of them (InvalidURL) and urlsplit drops others.
        "https://sns.us-east-1.amazonaws.com/a\x00.pem",
        "{origin}/SimpleNotificationService-0123\x00.pem",
        "{origin}/SimpleNotificationService-0123\t.pem",
        "{origin}/SimpleNotificationService-0123\n.pem",
        "{origin}/SimpleNotificationService-0123 .pem",
        "{origin}/SimpleNotificationService-0123\x7f.pem",
        "{origin}/SimpleNotificationService-0123\u00e9.pem",
        "\t{origin}{cert}",
        "https://sns.us-west-2.amazonaws.com\\@attacker.example{cert}",
        "{origin}/" + "0" * 3000 + ".pem",
    ],
)
async def test_a_certificate_from_an_untrusted_url_is_unauthorized(sns: LocalSns, cert_url: str) -> None:
    url = cert_url.format(port=sns.port, origin=sns.origin, cert=CERT)
    message = sns.sign(fixture("sns-notification.json"), cert=url)
    before = sum(sns.requests.values())

    for origin_pattern in (AMAZON, sns.origin_pattern):
        with pytest.raises(Unauthorized, match="^SigningCertURL .* is not an Amazon SNS certificate URL$"):
            await SesAdapter(origin_pattern).verify(delivery(message), TOPIC)
    assert sum(sns.requests.values()) == before  # nothing fetched


@pytest.mark.parametrize(
    "url",
    [
        fixture("sns-notification.json")["SigningCertURL"],
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem",
        "https://sns.af-south-1.amazonaws.com/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem",
    ],
)
def test_a_certificate_url_of_an_sns_region_is_trusted(url: str) -> None:
    check_certificate_url(url, re.compile(AMAZON))


@pytest.mark.parametrize(
    ("host", "names"),
    [
        ("sns.us-east-1.amazonaws.com", {"sns.amazonaws.com", "sns-signing.us-east-1.amazonaws.com"}),
        ("sns.af-south-1.amazonaws.com", {"sns.amazonaws.com", "sns-signing.af-south-1.amazonaws.com"}),
        ("sns.us-gov-east-1.amazonaws.com", {"sns-us-gov-west-1.amazonaws.com"}),
        ("sns.cn-northwest-1.amazonaws.com.cn", {"sns-cn-northwest-1.amazonaws.com.cn"}),
        # A host the origin pattern trusts in a test: SNS's usual name.
        ("127.0.0.1", {"sns.amazonaws.com"}),
    ],
)
def test_a_certificate_must_be_issued_to_the_name_sns_signs_with_in_its_region(host: str, names: set[str]) -> None:
    assert signing_names(host) == names


@pytest.mark.parametrize("cert", [UNNAMED, SAN_ELSEWHERE])
async def test_a_certificate_not_issued_to_sns_is_unauthorized(sns: LocalSns, adapter: SesAdapter, cert: str) -> None:
    message = sns.sign(fixture("sns-notification.json"), "2", cert=cert)

    with pytest.raises(
        Unauthorized, match=r"^the certificate at .* is not issued to Amazon SNS \(sns\.amazonaws\.com\)$"
    ):
        await adapter.verify(delivery(message), TOPIC)


async def test_a_certificate_naming_sns_only_in_its_subject_is_issued_to_sns(
    sns: LocalSns, adapter: SesAdapter
) -> None:
    await adapter.verify(delivery(sns.sign(fixture("sns-notification.json"), "2", cert=SUBJECT_ONLY)), TOPIC)


@pytest.mark.parametrize("cert", [HUGE, ENDLESS])
async def test_a_certificate_download_larger_than_a_certificate_is_unauthorized(
    sns: LocalSns, adapter: SesAdapter, cert: str
) -> None:
    message = sns.sign(fixture("sns-notification.json"), "2", cert=cert)

    # Bounded by the test too, so a download without end fails rather than hangs.
    with pytest.raises(Unauthorized, match=r"^SigningCertURL .* sent more than 10240 bytes: not a certificate$"):
        await asyncio.wait_for(adapter.verify(delivery(message), TOPIC), 30)


async def test_a_certificate_download_is_bounded_in_all_not_only_per_read(
    sns: LocalSns, adapter: SesAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every read of the slow download comes well within the limit; the whole does not.
    monkeypatch.setattr(sns_module, "FETCH_TIMEOUT_SECONDS", SLOW_SECONDS / 3)
    message = sns.sign(fixture("sns-notification.json"), "2", cert=SLOW)
    started = time.monotonic()

    with pytest.raises(Unavailable, match=r"^The SNS signing certificate at .* took more than 1\.0 s to download\.$"):
        await adapter.verify(delivery(message), TOPIC)
    assert time.monotonic() - started < SLOW_SECONDS


async def test_a_url_httpx_refuses_is_unauthorized_even_past_the_checks() -> None:
    with pytest.raises(Unauthorized, match="is not a URL"):
        await fetch_certificate("http://127.0.0.1:9/SimpleNotificationService-0\x00.pem")


@pytest.mark.parametrize(
    ("cert", "reason"),
    [
        (EXPIRED, "the certificate at .* is not valid now"),
        (pem_path("missing"), rf"SigningCertURL .*{pem_path('missing')} answered 404"),
    ],
)
async def test_a_certificate_that_cannot_vouch_is_unauthorized(
    sns: LocalSns, adapter: SesAdapter, cert: str, reason: str
) -> None:
    message = sns.sign(fixture("sns-notification.json"), "2", cert=cert)

    with pytest.raises(Unauthorized, match=reason):
        await adapter.verify(delivery(message), TOPIC)


async def test_a_certificate_host_failing_is_an_error_sns_retries(sns: LocalSns, adapter: SesAdapter) -> None:
    message = sns.sign(fixture("sns-notification.json"), cert=FAILING)

    # Unavailable, answered 503: SNS retries it, where a 401 would lose the message.
    with pytest.raises(Unavailable, match=rf"^The SNS signing certificate host answered 503 for http://.*{FAILING}\.$"):
        await adapter.verify(delivery(message), TOPIC)


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (timedelta(minutes=59), True),
        (timedelta(hours=2), False),
        (timedelta(minutes=-4), True),
        (timedelta(minutes=-30), False),
    ],
)
async def test_only_a_recent_message_is_accepted(
    sns: LocalSns, adapter: SesAdapter, age: timedelta, accepted: bool
) -> None:
    """SNS retries an HTTP(S) delivery for at most an hour; a little clock skew is allowed either way."""
    message = sns.sign(fixture("sns-notification.json"), at=datetime.now(UTC) - age)

    if accepted:
        await adapter.verify(delivery(message), TOPIC)
    else:
        with pytest.raises(Unauthorized, match="is stale"):
            await adapter.verify(delivery(message), TOPIC)


@pytest.mark.parametrize(
    ("name", "field", "reason"),
    [
        ("sns-notification.json", "Signature", "Object missing required field `Signature`"),
        ("sns-notification.json", "SigningCertURL", "Object missing required field `SigningCertURL`"),
        ("sns-notification.json", "SignatureVersion", "Object missing required field `SignatureVersion`"),
        ("sns-notification.json", "Timestamp", "Object missing required field `Timestamp`"),
        ("sns-notification.json", "TopicArn", "Object missing required field `TopicArn`"),
        ("sns-notification.json", "Type", "Object missing required field `Type`"),
        ("sns-subscription-confirmation.json", "Token", "the SNS SubscriptionConfirmation has no Token"),
        ("sns-unsubscribe-confirmation.json", "SubscribeURL", "the SNS UnsubscribeConfirmation has no SubscribeURL"),
    ],
)
async def test_a_message_missing_a_field_is_unauthorized(
    sns: LocalSns, adapter: SesAdapter, name: str, field: str, reason: str
) -> None:
    message = sns.sign(fixture(name))
    del message[field]

    with pytest.raises(Unauthorized, match=reason):
        await adapter.verify(delivery(message), TOPIC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"SignatureVersion": "3"}, "unsupported SNS SignatureVersion '3'"),
        ({"Signature": "not base64!"}, "the SNS Signature is not base64"),
        ({"Signature": "\u00e9" * 344}, "the SNS Signature is not base64"),
        ({"Signature": "\u0661\u0662\u0663\u0664"}, "the SNS Signature is not base64"),
        ({"Type": "Unknown"}, "unknown SNS message Type 'Unknown'"),
        ({"Timestamp": "yesterday"}, "SNS Timestamp 'yesterday' is not a time in UTC"),
    ],
)
async def test_a_message_sns_could_not_have_signed_is_unauthorized(
    sns: LocalSns, adapter: SesAdapter, change: dict[str, str], reason: str
) -> None:
    message = {**sns.sign(fixture("sns-notification.json")), **change}

    with pytest.raises(Unauthorized, match=reason):
        await adapter.verify(delivery(message), TOPIC)


@pytest.mark.parametrize(
    "body", [b"", b"Type=Notification", b"{", '{"Type": "\ud800"}'.encode("utf-8", "surrogatepass")]
)
async def test_a_body_that_is_not_an_sns_message_is_unauthorized(adapter: SesAdapter, body: bytes) -> None:
    with pytest.raises(Unauthorized, match="not an Amazon SNS message"):
        await adapter.verify(Delivery(headers={}, body=body, received_at=time.time()), TOPIC)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (TOPIC, None),
        ("arn:aws:sns:us-east-1:123456789012:ses-events, arn:aws:sns:eu-west-1:123456789012:ses_events", None),
        ("arn:aws-cn:sns:cn-north-1:123456789012:ses-events", None),
        ("arn:aws:sns:us-east-1:123456789012:ses-events.fifo", None),
        (" , ", "give the SNS topic's ARN, such as arn:aws:sns:us-east-1:123456789012:ses-events"),
        ("MyTopic", "'MyTopic' is not an SNS topic ARN like arn:aws:sns:us-east-1:123456789012:ses-events"),
        (
            f"{TOPIC},arn:aws:sqs:us-east-1:123456789012:queue",
            "'arn:aws:sqs:us-east-1:123456789012:queue' is not an SNS topic ARN like "
            "arn:aws:sns:us-east-1:123456789012:ses-events",
        ),
        (
            "arn:aws:sns:us-east-1:1234:ses-events",
            "'arn:aws:sns:us-east-1:1234:ses-events' is not an SNS topic ARN like "
            "arn:aws:sns:us-east-1:123456789012:ses-events",
        ),
    ],
)
def test_the_secret_is_one_or_more_topic_arns(secret: str, problem: str | None) -> None:
    assert SesAdapter(AMAZON).check_secret(secret) == problem


def test_the_origin_pattern_must_be_a_regular_expression() -> None:
    with pytest.raises(ValueError, match="sns_origin_pattern 'https://\\(' is not a regular expression"):
        Settings(sns_origin_pattern="https://(")


@pytest.fixture(scope="module")
def ses_api(database_url: str, redis_url: str, logs: Path, worker: Process, sns: LocalSns) -> Iterator[str]:
    """An API trusting the local SNS (CONTACTREPORTS_SNS_ORIGIN_PATTERN); the session's worker runs its reports."""
    env = service_env(database_url, redis_url, sns_origin_pattern=sns.origin_pattern)
    process, url = start_api(env, logs, "webhook-ses")
    yield url
    process.stop()


@pytest.fixture
async def ses_client(ses_api: str, account: ApiAccount) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ses_api, headers=account.headers, timeout=30) as http:
        yield http


@pytest.fixture
async def ses_url(ses_client: httpx.AsyncClient) -> str:
    return await webhook_url(ses_client, "ses", TOPIC)


async def post_as_sns(url: str, messages: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """Post each message as SNS does (its headers; the body as text/plain) and give (status, body) back."""
    async with httpx.AsyncClient(timeout=30) as amazon:
        responses = [
            await amazon.post(
                url,
                content=json.dumps(message),
                headers={
                    "Content-Type": "text/plain; charset=UTF-8",
                    "x-amz-sns-message-type": message["Type"],
                    "x-amz-sns-message-id": message["MessageId"],
                    "x-amz-sns-topic-arn": message["TopicArn"],
                    "User-Agent": "Amazon Simple Notification Service Agent",
                },
            )
            for message in messages
        ]
    return [(response.status_code, response.json()) for response in responses]


NOTHING = {"ingested": 0, "duplicates": 0, "ignored": {}, "rejected": []}


async def test_the_subscription_handshake_visits_the_subscribe_url(sns: LocalSns, ses_url: str) -> None:
    confirm = sns.subscribe_url(TOPIC, uuid.uuid4().hex)
    subscribe = sns.sign({**fixture("sns-subscription-confirmation.json"), "SubscribeURL": confirm}, "2")
    unsubscribe = sns.sign(fixture("sns-unsubscribe-confirmation.json"))

    assert await post_as_sns(ses_url, [subscribe, unsubscribe]) == [(200, NOTHING), (200, NOTHING)]
    assert sns.requests[confirm.removeprefix(sns.origin)] == 1


async def test_a_forged_subscribe_url_is_not_visited(sns: LocalSns, ses_url: str) -> None:
    # The local SNS under another name: not the origin the API trusts.
    forged = "/?Action=ConfirmSubscription&Token=forged"
    elsewhere = f"http://localhost:{sns.port}{forged}"
    message = sns.sign({**fixture("sns-subscription-confirmation.json"), "SubscribeURL": elsewhere})

    [(status, body)] = await post_as_sns(ses_url, [message])

    assert (status, body["errors"]) == (
        400,
        [{"field": "body", "message": f"SubscribeURL {elsewhere!r} is not an Amazon SNS URL"}],
    )
    assert sns.requests[forged] == 0


def sns_message_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def email_row(occurred_at: str, action: str, campaign: dict | None, **details: Any) -> dict[str, Any]:
    return {
        "occurred_at": occurred_at,
        "action": action,
        "category": "email",
        "campaign": campaign,
        "details": {"provider": "ses", **details},
    }


CONFIG_SET_CAMPAIGN = {"id": "ses:configset:ConfigSet", "name": "ConfigSet", "archived": False}
HARD_GENERAL = {"bounce_type": "hard", "reason": "General", "provider_event": "Bounce"}
# The bounce notification without a DSN bounced both Jane and Richard.
BOTH_BOUNCED = email_row(
    NOTICE_AT,
    "email.bounced",
    None,
    message_id="00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000",
    **HARD_GENERAL,
)
# Contact reports (of at most three years each) over every event the examples make.
REPORTS = {
    ("recipient@example.com", "2016-06-01T00:00:00Z", "2019-06-01T00:00:00Z"): [
        email_row("2016-10-14T05:02:16.645Z", "email.sent", CONFIG_SET_CAMPAIGN, message_id=EVENT_MAIL),
        email_row("2016-10-19T23:21:04.133Z", "email.delivered", CONFIG_SET_CAMPAIGN, message_id=EVENT_MAIL),
        email_row(
            "2017-08-05T00:41:02.669Z", "email.bounced", CONFIG_SET_CAMPAIGN, message_id=EVENT_MAIL, **HARD_GENERAL
        ),
        email_row(
            "2017-08-05T00:41:02.669Z",
            "email.spam_reported",
            CONFIG_SET_CAMPAIGN,
            message_id=EVENT_MAIL,
            reason="abuse",
        ),
        email_row(
            "2017-08-09T22:00:19.652Z",
            "email.opened",
            CONFIG_SET_CAMPAIGN,
            message_id=EVENT_MAIL,
            ip="192.0.2.1",
            user_agent=IPHONE,
        ),
        email_row(
            "2017-08-09T23:51:25.570Z",
            "email.clicked",
            CONFIG_SET_CAMPAIGN,
            message_id=EVENT_MAIL,
            url="http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
            ip="192.0.2.1",
            user_agent=CHROME,
        ),
    ],
    ("recipient@example.com", "2021-06-01T00:00:00Z", "2024-06-01T00:00:00Z"): [
        email_row(
            "2022-01-12T01:00:17.910Z",
            "email.unsubscribed",
            CONFIG_SET_CAMPAIGN,
            message_id="EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
        ),
    ],
    ("sender@example.com", "2016-06-01T00:00:00Z", "2019-06-01T00:00:00Z"): [
        email_row(
            "2016-10-14T17:38:15.211Z",
            "email.bounced",
            CONFIG_SET_CAMPAIGN,
            message_id=EVENT_MAIL,
            reason="Bad content",
            provider_event="Reject",
        ),
    ],
    ("jane@example.com", "2015-06-01T00:00:00Z", "2018-06-01T00:00:00Z"): [
        email_row(
            NOTICE_AT,
            "email.bounced",
            None,
            message_id="00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
            **HARD_GENERAL,
        ),
        BOTH_BOUNCED,
        email_row(
            NOTICE_AT,
            "email.delivered",
            None,
            message_id="0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
        ),
    ],
    ("richard@example.com", "2015-06-01T00:00:00Z", "2018-06-01T00:00:00Z"): [
        BOTH_BOUNCED,
        email_row(
            NOTICE_AT,
            "email.spam_reported",
            None,
            message_id="000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
            reason="abuse",
        ),
        email_row(
            NOTICE_AT,
            "email.spam_reported",
            None,
            message_id="0000013786031775-163e3910-53eb-4c8e-a04a-f29debf88a84-000000",
        ),
    ],
}


async def test_ses_documented_records_make_contact_reports(
    sns: LocalSns, ses_client: httpx.AsyncClient, ses_url: str
) -> None:
    names = sorted(EXAMPLES)
    messages = [
        sns.sign(ses_notification(fixture(name), sns_message_id(name)), version)
        for name, version in zip(names, cycle("12"), strict=False)
    ]

    first = await post_as_sns(ses_url, messages)
    # SNS redelivers with the same MessageId (re-signed, stamped anew by our stand-in).
    again = await post_as_sns(ses_url, [sns.sign(message) for message in messages])

    counts = [(len(EXAMPLES[name].events), EXAMPLES[name].ignored) for name in names]
    assert first == [
        (200, {"ingested": n, "duplicates": 0, "ignored": ignored, "rejected": []}) for n, ignored in counts
    ]
    assert again == [
        (200, {"ingested": 0, "duplicates": n, "ignored": ignored, "rejected": []}) for n, ignored in counts
    ]
    for (email, start, end), rows in REPORTS.items():
        assert await report_for(ses_client, email, start, end) == rows, email
    assert (await ses_client.get("/api/campaigns")).json()["items"] == [
        {"id": "ses:configset:ConfigSet", "name": "ConfigSet", "channel": "email", "sent_at": None, "archived": False}
    ]


async def test_a_tampered_notification_is_refused_and_stores_nothing(sns: LocalSns, ses_url: str) -> None:
    signed = sns.sign(ses_notification(fixture("event-delivery.json"), sns_message_id("tampered")), "2")
    forged = fixture("event-delivery.json")
    forged["delivery"]["recipients"] = ["victim@example.com"]

    refused = await post_as_sns(ses_url, [{**signed, "Message": json.dumps(forged)}])
    # The genuine message is still new: the forged one left nothing behind.
    genuine = await post_as_sns(ses_url, [signed])

    assert refused == [
        (
            401,
            {
                "type": "about:blank",
                "title": "Unauthorized",
                "status": 401,
                "detail": "the SNS signature does not match the message",
            },
        )
    ]
    assert genuine == [(200, {"ingested": 1, "duplicates": 0, "ignored": {}, "rejected": []})]


UNAUTHORIZED = {"type": "about:blank", "title": "Unauthorized", "status": 401}


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("Signature", "\u00e9" * 344, "the SNS Signature is not base64"),
        (
            "SigningCertURL",
            "{origin}/SimpleNotificationService-0\x00.pem",
            "SigningCertURL '{origin}/SimpleNotificationService-0\\x00.pem' is not an Amazon SNS certificate URL",
        ),
    ],
)
async def test_a_signature_or_certificate_url_with_stray_characters_is_a_401(
    sns: LocalSns, ses_url: str, field: str, value: str, detail: str
) -> None:
    signed = sns.sign(ses_notification(fixture("event-delivery.json"), sns_message_id(detail)))
    message = {**signed, field: value.format(origin=sns.origin)}

    assert await post_as_sns(ses_url, [message]) == [
        (401, {**UNAUTHORIZED, "detail": detail.format(origin=sns.origin)})
    ]


async def test_a_subscribe_url_with_stray_characters_is_not_visited(sns: LocalSns, ses_url: str) -> None:
    url = sns.subscribe_url(TOPIC, "a\tb")
    message = sns.sign({**fixture("sns-subscription-confirmation.json"), "SubscribeURL": url})

    [(status, body)] = await post_as_sns(ses_url, [message])

    assert (status, body["errors"]) == (
        400,
        [{"field": "body", "message": f"SubscribeURL {url!r} is not an Amazon SNS URL"}],
    )


async def test_a_certificate_host_failing_is_a_503_and_the_retry_is_stored(sns: LocalSns, ses_url: str) -> None:
    notification = ses_notification(fixture("event-delivery.json"), sns_message_id("cert-host-down"))

    failing = await post_as_sns(ses_url, [sns.sign(notification, "2", cert=FAILING)])
    retried = await post_as_sns(ses_url, [sns.sign(notification, "2")])

    [(status, body)] = failing
    assert (status, body["title"]) == (503, "Service Unavailable")
    assert body["detail"].endswith(f"{FAILING}. Nothing was stored; try again.")
    assert retried == [(200, {"ingested": 1, "duplicates": 0, "ignored": {}, "rejected": []})]


async def test_a_record_of_more_recipients_than_a_request_may_carry_is_refused_whole(
    sns: LocalSns, ses_url: str, account: ApiAccount, db: Database
) -> None:
    # SES sends to at most 50 recipients, but SNS signs whatever is published to the topic.
    record = fixture("event-send.json")
    record["mail"]["destination"] = [f"r{n}@example.com" for n in range(20_000)]
    message = sns.sign(ses_notification(record, sns_message_id("too many recipients")))

    assert await post_as_sns(ses_url, [message]) == [(400, too_many_events(20_000))]
    assert await stored(db, account.id) == (0, 0)
