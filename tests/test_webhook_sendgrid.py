"""The SendGrid adapter: SendGrid's documented examples become exactly these events, and the
Signed Event Webhook's signatures are checked (keys generated here, and SendGrid's own vector);
then the same examples, signed, posted to the live API and read back through contact reports."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from conftest import ApiAccount
from contactreports.catalogue import category_of
from contactreports.config import Settings
from contactreports.ingest import EventIn, to_new_events
from contactreports.models import FieldError, datetime_to_ms, format_ms
from contactreports.store.database import Database
from contactreports.webhooks.base import Delivery, Malformed, Parsed, Unauthorized
from contactreports.webhooks.sendgrid import MAX_SKEW_SECONDS, SendGridAdapter
from helpers import (
    all_rows,
    create_report,
    in_order,
    report_for,
    stored,
    too_many_events,
    wait_done,
    webhook_url,
)

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks" / "sendgrid"
SIGNED_BY_SENDGRID = json.loads((FIXTURES / "signed_by_sendgrid.json").read_text())
ADAPTER = SendGridAdapter()


# Signing as SendGrid does, for these tests and the end-to-end ones.
def new_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair: the private key, and the public key as SendGrid shows it (base64 DER)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    return private_key, public_key_text(private_key.public_key())


def public_key_text(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()


def signed_headers(private_key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers SendGrid's Signed Event Webhook sends with `body`, signed at `timestamp`."""
    signature = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
    }


def now_signed(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    """The headers of `body` signed just now."""
    return signed_headers(private_key, body, int(time.time()))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def delivery(body: bytes, headers: dict[str, str] | None = None, received_at: float = 0.0) -> Delivery:
    return Delivery({name.lower(): value for name, value in (headers or {}).items()}, body, received_at)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# The values SendGrid's examples repeat.
ALEX = "alex@example.com"
DOCS_TIME = at(1513299569)
MESSAGE = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
OLD_IE = "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322; .NET CLR 2.0.50727)"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) "
    "Version/7.0 Mobile/11D257 Safari/9537.53"
)
CAT_FACTS = "sendgrid:category:cat facts"


def cat_facts(event: EventIn) -> Parsed:
    """One event of the reference page's examples, which are all in the category "cat facts"."""
    return in_order([event], {CAT_FACTS: "cat facts"})


def bounce(event_id: str, bounce_type: str) -> Parsed:
    details = {"provider": "sendgrid", "message_id": MESSAGE, "bounce_type": bounce_type}
    details |= {"reason": "500 unknown recipient (Invalid Address)", "provider_event": "bounce"}
    return cat_facts(EventIn(ALEX, "email.bounced", DOCS_TIME, event_id, CAT_FACTS, details))


EXPECTED = {
    "bounce.json": bounce("sendgrid:6g4ZI7SA-xmRDv57GoPIPw==", "hard"),
    "blocked.json": bounce("sendgrid:6g4ZI7SA-xmRDv57GoPIPw==", "soft"),
    "delivered.json": cat_facts(
        EventIn(
            ALEX,
            "email.delivered",
            DOCS_TIME,
            "sendgrid:rWVYmVk90MjZJ9iohOBa3w==",
            CAT_FACTS,
            {"provider": "sendgrid", "message_id": MESSAGE},
        )
    ),
    "deferred.json": Parsed(ignored={"deferred": 1}),
    "dropped.json": cat_facts(
        EventIn(
            ALEX,
            "email.bounced",
            DOCS_TIME,
            "sendgrid:zmzJhfJgAfUSOW80yEbPyw==",
            CAT_FACTS,
            {"provider": "sendgrid", "message_id": MESSAGE, "reason": "Bounced Address", "provider_event": "dropped"},
        )
    ),
    "processed.json": cat_facts(
        EventIn(
            ALEX,
            "email.sent",
            DOCS_TIME,
            "sendgrid:rbtnWrG1DVDGGGFHFyun0A==",
            CAT_FACTS,
            {
                "provider": "sendgrid",
                "message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
            },
        )
    ),
    # Two categories: neither is the campaign.
    "click.json": in_order(
        events=[
            EventIn(
                "email@example.com",
                "email.clicked",
                at(1249948800),
                "sendgrid:sendgrid_internal_event_id",
                None,
                {
                    "provider": "sendgrid",
                    "message_id": "sendgrid_internal_message_id",
                    "user_agent": IPHONE,
                    "ip": "255.255.255.255",
                    "url": "http://example.com/blog/news.html",
                },
            )
        ]
    ),
    # sg_machine_open is false: a person opened it, nothing to flag.
    "open.json": cat_facts(
        EventIn(
            ALEX,
            "email.opened",
            DOCS_TIME,
            "sendgrid:FOTFFO0ecsBE-zxFXfs6WA==",
            CAT_FACTS,
            {"provider": "sendgrid", "message_id": MESSAGE, "user_agent": OLD_IE, "ip": "255.255.255.255"},
        )
    ),
    "spamreport.json": in_order(
        events=[
            EventIn(
                ALEX,
                "email.spam_reported",
                DOCS_TIME,
                "sendgrid:37nvH5QBz858KGVYCM4uOA==",
                None,
                {"provider": "sendgrid", "message_id": MESSAGE},
            )
        ]
    ),
    "unsubscribe.json": cat_facts(
        EventIn(
            ALEX,
            "email.unsubscribed",
            DOCS_TIME,
            "sendgrid:zz_BjPgU_5pS-J8vlfB1sg==",
            CAT_FACTS,
            {"provider": "sendgrid", "message_id": MESSAGE, "provider_event": "unsubscribe"},
        )
    ),
    "group_resubscribe.json": cat_facts(
        EventIn(
            ALEX,
            "campaign.subscribed",
            DOCS_TIME,
            "sendgrid:w_u0vJhLT-OFfprar5N93g==",
            CAT_FACTS,
            {"provider": "sendgrid", "message_id": MESSAGE, "user_agent": OLD_IE, "ip": "255.255.255.255"},
        )
    ),
    "group_unsubscribe.json": cat_facts(
        EventIn(
            ALEX,
            "email.unsubscribed",
            DOCS_TIME,
            "sendgrid:ahSCB7xYcXFb-hEaawsPRw==",
            CAT_FACTS,
            {
                "provider": "sendgrid",
                "message_id": MESSAGE,
                "user_agent": OLD_IE,
                "ip": "255.255.255.255",
                "provider_event": "group_unsubscribe",
            },
        )
    ),
    # It names no recipient, and needs none: it is not stored.
    "account_status_change.json": Parsed(ignored={"account_status_change": 1}),
    "category_string.json": in_order(
        events=[
            EventIn(ALEX, "email.opened", at(1337966815), None, "sendgrid:category:newuser", {"provider": "sendgrid"}),
            EventIn(
                "bobby@example.com",
                "email.opened",
                at(1337966815),
                None,
                "sendgrid:category:olduser",
                {"provider": "sendgrid"},
            ),
        ],
        campaigns={"sendgrid:category:newuser": "newuser", "sendgrid:category:olduser": "olduser"},
    ),
    "category_array.json": in_order(
        events=[
            EventIn(ALEX, "email.opened", at(1337966815), None, None, {"provider": "sendgrid"}),
            EventIn(
                "bobby@example.com",
                "email.opened",
                at(1337966815),
                None,
                "sendgrid:category:olduser",
                {"provider": "sendgrid"},
            ),
        ],
        campaigns={"sendgrid:category:olduser": "olduser"},
    ),
    "unique_args.json": in_order(
        events=[
            EventIn(
                ALEX,
                "email.clicked",
                at(1337966815),
                None,
                None,
                {"provider": "sendgrid", "message_id": "sendgrid_internal_message_id", "url": "https://example.com"},
            )
        ]
    ),
    # The example's timestamp is in milliseconds.
    "singlesend.json": in_order(
        events=[
            EventIn(
                ALEX,
                "email.opened",
                datetime(2020, 6, 9, 18, 19, 12, 372000, tzinfo=UTC),
                "sendgrid:sendgrid_internal_event_id",
                "sendgrid:singlesend:sendgrid_singlesend_id",
                {
                    "provider": "sendgrid",
                    "message_id": "sendgrid_internal_message_id",
                    "user_agent": OLD_IE,
                    "ip": "127.0.0.1",
                },
            )
        ],
        campaigns={"sendgrid:singlesend:sendgrid_singlesend_id": "Example Single Send"},
    ),
    "marketing_campaign.json": in_order(
        events=[
            EventIn(
                ALEX,
                "email.sent",
                at(1442349428),
                "sendgrid:sendgrid_internal_event_id",
                "sendgrid:campaign:12345",
                {"provider": "sendgrid", "message_id": "sendgrid_internal_message_id"},
            )
        ],
        campaigns={"sendgrid:campaign:12345": "campaign name"},
    ),
    "ab_test.json": in_order(
        events=[
            EventIn(
                "tadpole_0010@stbase-018.sjc1.sendgrid.net",
                "email.sent",
                at(1442349848),
                "sendgrid:qNOzbkTuTNCdxa1eXEpnXg",
                "sendgrid:campaign:23314",
                {"provider": "sendgrid", "message_id": "5lFl7Fr1Rjme_EyzNNB_5A.stfilter-015.5185.55F883172.0"},
            ),
            EventIn(
                "tadpole_0001@stbase-018.sjc1.sendgrid.net",
                "email.delivered",
                at(1442349911),
                "sendgrid:X2M1IUfMRhuAhWM0CbmFqQ",
                "sendgrid:campaign:23314",
                {"provider": "sendgrid", "message_id": "fPJrJPIRTxC_obpgfTy74w.stfilter-015.5185.55F883564.0"},
            ),
        ],
        campaigns={"sendgrid:campaign:23314": "unique args ab"},
    ),
    "legacy_unsubscribe.json": in_order(
        events=[
            EventIn(
                "nick@sendgrid.com",
                "email.unsubscribed",
                at(1380822437),
                None,
                None,
                {"provider": "sendgrid", "provider_event": "unsubscribe"},
            )
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_documented_example_becomes_exactly_these_events(name: str) -> None:
    assert ADAPTER.parse(delivery(fixture(name))) == EXPECTED[name]


def test_every_example_kept_is_checked() -> None:
    kept = {path.name for path in FIXTURES.glob("*.json")}
    assert kept == set(EXPECTED) | {"signed_by_sendgrid.json"}


def test_the_examples_pass_the_checks_every_event_passes() -> None:
    events = [event for parsed in EXPECTED.values() for event in parsed.events]
    assert len(to_new_events(events, Settings().max_details_bytes)) == len(events) == 21


def test_a_delivery_signed_by_sendgrid_parses() -> None:
    parsed = ADAPTER.parse(delivery(SIGNED_BY_SENDGRID["body"].encode()))
    assert parsed == in_order(
        events=[
            EventIn(
                "hello@world.com",
                "email.bounced",
                at(1600112492),
                "sendgrid:ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                None,
                {
                    "provider": "sendgrid",
                    "message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                    "reason": "Bounced Address",
                    "provider_event": "dropped",
                },
            )
        ]
    )


def test_types_without_an_action_are_counted_not_stored() -> None:
    body = b'[{"event": "deferred"}, {"event": "new_kind"}, {"event": "new_kind"}, {"event": "spam report"}]'
    assert ADAPTER.parse(delivery(body)) == Parsed(ignored={"deferred": 1, "new_kind": 2, "spam report": 1})


def test_an_empty_batch_is_no_events() -> None:
    assert ADAPTER.parse(delivery(b"[]")) == Parsed()


def test_a_timestamp_in_a_string_is_read_as_seconds() -> None:
    body = b'[{"event": "open", "email": "ann@example.com", "timestamp": "1337966815"}]'
    assert ADAPTER.parse(delivery(body)).events[0].occurred_at == at(1337966815)


def test_a_machine_open_is_flagged() -> None:
    body = b'[{"event": "open", "email": "ann@example.com", "timestamp": 1337966815, "sg_machine_open": true}]'
    assert ADAPTER.parse(delivery(body)).events[0].details == {"provider": "sendgrid", "machine_open": True}


def test_a_category_too_long_for_a_campaign_id_names_no_campaign() -> None:
    longest, too_long = "c" * 182, "c" * 183  # "sendgrid:category:" is 18 characters; ids up to 200
    body = json.dumps(
        [
            {"event": "open", "email": "ann@example.com", "timestamp": 1, "category": name}
            for name in (longest, too_long)
        ]
    ).encode()
    parsed = ADAPTER.parse(delivery(body))
    assert [event.campaign_id for event in parsed.events] == [f"sendgrid:category:{longest}", None]
    assert parsed.campaigns == {f"sendgrid:category:{longest}": longest}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body: not valid JSON: Input data was truncated"),
        (b"[{]", "body: not valid JSON: JSON is malformed: expected '\"' (byte 2)"),
        (b"\xff", "body: not valid JSON: JSON is malformed: invalid character (byte 0)"),
        (
            b'{"event": "open"}',
            "not SendGrid's Event Webhook format (a JSON array of events): body: Expected `array`, got `object`",
        ),
        (
            b"[1]",
            "not SendGrid's Event Webhook format (a JSON array of events): [0]: Expected `object`, got `int`",
        ),
        (
            b'[{"email": "ann@example.com", "timestamp": 1}]',
            "not SendGrid's Event Webhook format (a JSON array of events): [0].event: "
            "Object missing required field `event`",
        ),
        # Without its type an event cannot even be counted as ignored.
        (
            b'[{"event": "deferred"}, {"event": ["open"], "email": "ann@example.com", "timestamp": 1}]',
            "not SendGrid's Event Webhook format (a JSON array of events): [1].event: Expected `str`, got `array`",
        ),
    ],
)
def test_a_body_not_in_sendgrids_format_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(Malformed) as raised:
        ADAPTER.parse(delivery(body))
    assert str(raised.value) == message


ANN = {"event": "open", "email": "ann@example.com", "timestamp": 1337966815}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"event": "open", "timestamp": 1}, ("email", "missing from a 'open' event")),
        ({"event": "click", "email": "ann@example.com"}, ("timestamp", "missing from a 'click' event")),
        (ANN | {"timestamp": "yesterday"}, ("timestamp", "'yesterday' is not unix seconds")),
        (ANN | {"timestamp": "100000000000000000000"}, ("timestamp", "'100000000000000000000' is not unix seconds")),
        (ANN | {"timestamp": "9" * 100}, ("timestamp", "'" + "9" * 38 + "… is not unix seconds")),
        (ANN | {"timestamp": 1000000000000000000}, ("timestamp", "1000000000000000000 is out of range")),
        # JSON's longest integers (4,300 digits) overflow the division; quoted cut short.
        (ANN | {"timestamp": int("9" * 4300)}, ("timestamp", "9" * 39 + "… is out of range")),
        (ANN | {"timestamp": 1.5}, ("timestamp", "Expected `int | str | null`, got `float`")),
        (ANN | {"category": 5}, ("category", "Expected `str | array | null`, got `int`")),
    ],
)  # fmt: skip
def test_an_event_with_a_bad_field_is_set_aside_by_its_place_in_the_array(bad: dict, error: tuple[str, str]) -> None:
    # An ignored event before it: the position is the array's, not among the events kept.
    body = json.dumps([{"event": "deferred"}, bad, ANN | {"email": "bob@example.com"}]).encode()

    parsed = ADAPTER.parse(delivery(body))

    assert (parsed.rejected, parsed.positions) == ([FieldError(f"[1].{error[0]}", error[1])], [2])
    assert [event.email for event in parsed.events] == ["bob@example.com"]
    assert parsed.ignored == {"deferred": 1}


def test_an_ignored_event_is_counted_whatever_its_other_fields() -> None:
    body = b'[{"event": "deferred", "timestamp": "soon", "category": 5}]'
    assert ADAPTER.parse(delivery(body)) == Parsed(ignored={"deferred": 1})


# Signatures.
BODY = fixture("open.json")
SIGNED_AT = 1_700_000_000


@pytest.fixture(scope="module")
def key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    return new_key()


async def test_a_signed_delivery_verifies(key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private_key, secret = key
    await ADAPTER.verify(delivery(BODY, signed_headers(private_key, BODY, SIGNED_AT), SIGNED_AT + 1.5), secret)


async def test_sendgrids_own_signature_verifies() -> None:
    signed = SIGNED_BY_SENDGRID
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": signed["signature"],
        "X-Twilio-Email-Event-Webhook-Timestamp": signed["timestamp"],
    }
    body = signed["body"].encode()
    await ADAPTER.verify(delivery(body, headers, int(signed["timestamp"]) + 10), signed["public_key"])
    with pytest.raises(Unauthorized, match="does not match"):
        await ADAPTER.verify(delivery(body.rstrip(), headers, int(signed["timestamp"])), signed["public_key"])


@pytest.mark.parametrize("seconds", [-MAX_SKEW_SECONDS, MAX_SKEW_SECONDS])
async def test_a_signature_up_to_the_skew_either_way_verifies(
    key: tuple[ec.EllipticCurvePrivateKey, str], seconds: int
) -> None:
    private_key, secret = key
    await ADAPTER.verify(delivery(BODY, signed_headers(private_key, BODY, SIGNED_AT), SIGNED_AT + seconds), secret)


def tampered(headers: dict[str, str], name: str, value: str | None) -> dict[str, str]:
    """`headers` with one header changed, or removed when `value` is None."""
    changed = {header: text for header, text in headers.items() if header != name}
    return changed if value is None else changed | {name: value}


SIGNATURE, TIMESTAMP = "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"
UNSIGNED = (
    "unsigned: no X-Twilio-Email-Event-Webhook-Signature and -Timestamp headers "
    "(turn on the Signed Event Webhook in SendGrid)"
)
NO_MATCH = "the signature does not match this body, timestamp and verification key"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda headers: {}, UNSIGNED),
        (lambda headers: tampered(headers, SIGNATURE, None), UNSIGNED),
        (lambda headers: tampered(headers, TIMESTAMP, None), UNSIGNED),
        (lambda headers: tampered(headers, SIGNATURE, ""), UNSIGNED),
        (lambda headers: tampered(headers, TIMESTAMP, str(SIGNED_AT + 1)), NO_MATCH),
        (
            lambda headers: tampered(headers, TIMESTAMP, f"{SIGNED_AT}.0"),
            "X-Twilio-Email-Event-Webhook-Timestamp '1700000000.0' is not unix seconds",
        ),
        (
            lambda headers: tampered(headers, TIMESTAMP, "1" * 21),
            "X-Twilio-Email-Event-Webhook-Timestamp '111111111111111111111' is not unix seconds",
        ),
        (lambda headers: tampered(headers, SIGNATURE, "not base64!"), NO_MATCH),
        # Beyond ASCII: b64decode raises a plain ValueError, not binascii.Error.
        (lambda headers: tampered(headers, SIGNATURE, "\xe9" + headers[SIGNATURE]), NO_MATCH),
        (lambda headers: tampered(headers, SIGNATURE, base64.b64encode(b"0" * 70).decode()), NO_MATCH),
    ],
)
async def test_unsigned_or_tampered_headers_are_unauthorized(
    key: tuple[ec.EllipticCurvePrivateKey, str], change, message: str
) -> None:
    private_key, secret = key
    headers = change(signed_headers(private_key, BODY, SIGNED_AT))
    with pytest.raises(Unauthorized) as raised:
        await ADAPTER.verify(delivery(BODY, headers, SIGNED_AT), secret)
    assert str(raised.value) == message


async def test_a_tampered_body_is_unauthorized(key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private_key, secret = key
    headers = signed_headers(private_key, BODY, SIGNED_AT)
    with pytest.raises(Unauthorized, match=NO_MATCH):
        await ADAPTER.verify(delivery(BODY.replace(b"alex@", b"eve@"), headers, SIGNED_AT), secret)


async def test_another_key_is_unauthorized(key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private_key, _ = key
    _, other_secret = new_key()
    headers = signed_headers(private_key, BODY, SIGNED_AT)
    with pytest.raises(Unauthorized, match=NO_MATCH):
        await ADAPTER.verify(delivery(BODY, headers, SIGNED_AT), other_secret)


async def test_an_unusable_stored_key_is_unauthorized(key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    private_key, _ = key
    headers = signed_headers(private_key, BODY, SIGNED_AT)
    with pytest.raises(Unauthorized) as raised:
        await ADAPTER.verify(delivery(BODY, headers, SIGNED_AT), "MFkw")
    assert str(raised.value) == (
        "the account's SendGrid verification key is unusable: "
        "not a public key: copy the whole verification key SendGrid shows"
    )


@pytest.mark.parametrize("seconds", [-MAX_SKEW_SECONDS - 1, MAX_SKEW_SECONDS + 1])
async def test_a_stale_or_future_signature_is_unauthorized(
    key: tuple[ec.EllipticCurvePrivateKey, str], seconds: int
) -> None:
    private_key, secret = key
    headers = signed_headers(private_key, BODY, SIGNED_AT)
    with pytest.raises(Unauthorized) as raised:
        await ADAPTER.verify(delivery(BODY, headers, SIGNED_AT + seconds), secret)
    assert str(raised.value) == "stale: signed at 1700000000, more than 300 s from now"


# The account's secret.
def test_a_verification_key_is_a_secret(key: tuple[ec.EllipticCurvePrivateKey, str]) -> None:
    _, secret = key
    assert ADAPTER.check_secret(secret) is None
    assert ADAPTER.check_secret(f"  {secret}\n") is None  # as pasted
    assert ADAPTER.check_secret(SIGNED_BY_SENDGRID["public_key"]) is None


def pem(secret: str) -> str:
    return f"-----BEGIN PUBLIC KEY-----\n{secret}\n-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "not a public key: copy the whole verification key SendGrid shows"),
        ("a verification key", "not base64: SendGrid's verification key is base64 text starting MFkw"),
        ("MFkw\xe9", "not base64: SendGrid's verification key is base64 text starting MFkw"),
        (pem(new_key()[1]), "not base64: SendGrid's verification key is base64 text starting MFkw"),
        (new_key()[1][:-1], "not base64: SendGrid's verification key is base64 text starting MFkw"),
        (new_key()[1][:-8], "not a public key: copy the whole verification key SendGrid shows"),
        (
            public_key_text(ec.generate_private_key(ec.SECP384R1()).public_key()),
            "not an ECDSA P-256 public key, which SendGrid's verification key is",
        ),
        (
            public_key_text(rsa.generate_private_key(65537, 2048).public_key()),
            "not an ECDSA P-256 public key, which SendGrid's verification key is",
        ),
    ],
)
def test_anything_else_is_refused_saying_why(secret: str, message: str) -> None:
    assert ADAPTER.check_secret(secret) == message


# End to end: SendGrid's examples, signed, posted over HTTP to the live API.
# The reference page's examples for alex@example.com on 2017-12-15, in an order a message could
# take. `blocked.json` repeats `bounce.json`'s sg_event_id, so SendGrid's own examples show a
# duplicate being skipped.
ALEX_2017 = [
    "processed.json",
    "delivered.json",
    "deferred.json",
    "open.json",
    "bounce.json",
    "blocked.json",
    "dropped.json",
    "spamreport.json",
    "unsubscribe.json",
    "group_unsubscribe.json",
    "group_resubscribe.json",
    "account_status_change.json",
]
CAMPAIGN_EXAMPLES = ["marketing_campaign.json", "ab_test.json"]


@pytest.fixture
async def sendgrid(client: httpx.AsyncClient) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """The account's SendGrid webhook URL, and the key its deliveries are signed with."""
    private_key, secret = new_key()
    return await webhook_url(client, "sendgrid", secret), private_key


async def post_signed(url: str, private_key: ec.EllipticCurvePrivateKey, body: bytes) -> httpx.Response:
    """Post `body` as SendGrid does, signed now."""
    headers = {"Content-Type": "application/json", **now_signed(private_key, body)}
    async with httpx.AsyncClient() as sendgrid:
        return await sendgrid.post(url, content=body, headers=headers)


def result(
    ingested: int, duplicates: int = 0, ignored: dict[str, int] | None = None, rejected: list | None = None
) -> tuple[int, dict]:
    return 200, {"ingested": ingested, "duplicates": duplicates, "ignored": ignored or {}, "rejected": rejected or []}


def report_row(event: EventIn, campaigns: dict[str, str]) -> dict:
    """The row a contact report shows for `event`, whose campaign `campaigns` names."""
    campaign = event.campaign_id and {"id": event.campaign_id, "name": campaigns[event.campaign_id], "archived": False}
    return {
        "occurred_at": format_ms(datetime_to_ms(event.occurred_at)),
        "action": event.action,
        "category": category_of(event.action),
        "campaign": campaign,
        "details": event.details,
    }


async def test_sendgrids_examples_posted_signed_make_a_contact_report(
    client: httpx.AsyncClient, sendgrid: tuple[str, ec.EllipticCurvePrivateKey]
) -> None:
    url, private_key = sendgrid
    names = ALEX_2017 + CAMPAIGN_EXAMPLES
    first = [await post_signed(url, private_key, fixture(name)) for name in names]
    again = [await post_signed(url, private_key, fixture(name)) for name in names]

    deferred, status_change = result(0, ignored={"deferred": 1}), result(0, ignored={"account_status_change": 1})
    assert [(response.status_code, response.json()) for response in first] == [
        *[result(1)] * 2,
        deferred,
        *[result(1)] * 2,
        result(0, 1),  # blocked.json: bounce.json's event id
        *[result(1)] * 5,
        status_change,
        result(1),
        result(2),
    ]
    assert [(response.status_code, response.json()) for response in again] == [
        *[result(0, 1)] * 2,
        deferred,
        *[result(0, 1)] * 8,
        status_change,
        result(0, 1),
        result(0, 2),
    ]
    stored = [name for name in ALEX_2017 if name != "blocked.json"]
    assert await report_for(client, ALEX, "2017-01-01T00:00:00Z", "2018-01-01T00:00:00Z") == [
        report_row(event, EXPECTED[name].campaigns) for name in stored for event in EXPECTED[name].events
    ]
    assert (await client.get("/api/campaigns")).json()["items"] == [
        {"id": campaign_id, "name": name, "channel": "email", "sent_at": None, "archived": False}
        for campaign_id, name in [
            ("sendgrid:campaign:12345", "campaign name"),
            ("sendgrid:campaign:23314", "unique args ab"),
            (CAT_FACTS, "cat facts"),
        ]
    ]


def without_email(body: bytes) -> bytes:
    events = json.loads(body)
    del events[0]["email"]
    return json.dumps(events).encode()


# How a refused delivery is signed: (the account's key, the body) -> its headers.
Signer = Callable[[ec.EllipticCurvePrivateKey, bytes], dict[str, str | bytes]]


def unsigned(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    return {}


def by_another_key(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    return now_signed(new_key()[0], body)


def for_another_body(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    return now_signed(private_key, body.replace(b"500 unknown recipient", b"250 OK"))


def stale(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    return signed_headers(private_key, body, int(time.time()) - MAX_SKEW_SECONDS - 60)


def beyond_ascii(private_key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str | bytes]:
    """A signature header that starts with a byte beyond ASCII (a 500 once, from base64's ValueError)."""
    headers: dict[str, str | bytes] = {**now_signed(private_key, body)}
    return headers | {SIGNATURE: b"\xe9" + str(headers[SIGNATURE]).encode()}


INVALID = "The request is invalid: see `errors`."


@pytest.mark.parametrize(
    ("sign", "body", "status", "detail", "errors"),
    [
        (unsigned, fixture("bounce.json"), 401, UNSIGNED, None),
        (by_another_key, fixture("bounce.json"), 401, NO_MATCH, None),
        (for_another_body, fixture("bounce.json"), 401, NO_MATCH, None),
        (stale, fixture("bounce.json"), 401, "stale: signed at {signed_at}, more than 300 s from now", None),
        (beyond_ascii, fixture("bounce.json"), 401, NO_MATCH, None),
        (now_signed, b'{"event": "bounce"}', 400, INVALID,
         [("body", "not SendGrid's Event Webhook format (a JSON array of events): body: "
                   "Expected `array`, got `object`")]),
    ],
)  # fmt: skip
async def test_unsigned_tampered_stale_or_malformed_deliveries_store_nothing(
    client: httpx.AsyncClient,
    sendgrid: tuple[str, ec.EllipticCurvePrivateKey],
    sign: Signer,
    body: bytes,
    status: int,
    detail: str,
    errors: list[tuple[str, str]] | None,
) -> None:
    url, private_key = sendgrid
    headers = sign(private_key, body)
    async with httpx.AsyncClient() as sender:
        response = await sender.post(url, content=body, headers={"Content-Type": "application/json", **headers})

    detail = detail.format(signed_at=headers.get(TIMESTAMP))
    extra = {"errors": [{"field": field, "message": message} for field, message in errors]} if errors else {}
    title = {400: "Bad Request", 401: "Unauthorized"}[status]
    assert (response.status_code, response.json()) == (
        status,
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
    )
    assert await report_for(client, ALEX, "2017-01-01T00:00:00Z", "2018-01-01T00:00:00Z") == []
    assert (await client.get("/api/campaigns")).json()["items"] == []


async def test_a_batchs_events_that_our_checks_refuse_are_set_aside_and_the_others_stored(
    client: httpx.AsyncClient, sendgrid: tuple[str, ec.EllipticCurvePrivateKey]
) -> None:
    url, private_key = sendgrid
    [bounce] = json.loads(fixture("bounce.json"))
    unstorable = {**bounce, "email": "alex at example.com", "sg_event_id": "another-event"}
    response = await post_signed(url, private_key, json.dumps([unstorable, bounce]).encode())

    rejected = [{"field": "[0].email", "message": "not an email address"}]
    assert (response.status_code, response.json()) == result(1, rejected=rejected)
    rows = await report_for(client, ALEX, "2017-01-01T00:00:00Z", "2018-01-01T00:00:00Z")
    assert [(row["action"], row["details"]["bounce_type"]) for row in rows] == [("email.bounced", "hard")]


async def test_rejected_events_are_named_by_their_place_in_the_delivery_in_its_order(
    client: httpx.AsyncClient, sendgrid: tuple[str, ec.EllipticCurvePrivateKey]
) -> None:
    # What the adapter sets aside (no email, no timestamp) and what the route's checks refuse (not
    # an address, an id too long), among ignored events: one list, by position in the array.
    url, private_key = sendgrid
    [bounce] = json.loads(fixture("bounce.json"))
    body = [
        {"event": "deferred"},
        {**bounce, "email": "alex at example.com", "sg_event_id": "a"},
        {"event": "deferred"},
        {key: value for key, value in bounce.items() if key != "timestamp"},
        *[{**bounce, "sg_event_id": f"b{index}"} for index in range(7)],
        {**bounce, "sg_event_id": "x" * 300},
        {key: value for key, value in bounce.items() if key != "email"},
        {**bounce, "sg_event_id": "c", "email": "nobody"},
    ]
    response = await post_signed(url, private_key, json.dumps(body).encode())

    assert (response.status_code, response.json()) == result(
        7,
        ignored={"deferred": 2},
        rejected=[
            {"field": "[1].email", "message": "not an email address"},
            {"field": "[3].timestamp", "message": "missing from a 'bounce' event"},
            {"field": "[11].id", "message": "Expected `str` of length <= 200"},
            {"field": "[12].email", "message": "missing from a 'bounce' event"},
            {"field": "[13].email", "message": "not an email address"},
        ],
    )


async def test_an_event_without_email_is_set_aside_and_the_others_stored(
    client: httpx.AsyncClient, sendgrid: tuple[str, ec.EllipticCurvePrivateKey]
) -> None:
    url, private_key = sendgrid
    body = json.dumps([json.loads(without_email(fixture("bounce.json")))[0], *json.loads(fixture("delivered.json"))])
    response = await post_signed(url, private_key, body.encode())

    assert (response.status_code, response.json()) == result(
        1, rejected=[{"field": "[0].email", "message": "missing from a 'bounce' event"}]
    )
    rows = await report_for(client, ALEX, "2017-01-01T00:00:00Z", "2018-01-01T00:00:00Z")
    assert [row["action"] for row in rows] == ["email.delivered"]


async def test_a_campaign_name_with_control_characters_or_too_long_is_cleaned_not_refused(
    client: httpx.AsyncClient, sendgrid: tuple[str, ec.EllipticCurvePrivateKey]
) -> None:
    url, private_key = sendgrid
    [bounce] = json.loads(fixture("bounce.json"))
    named = {**bounce, "marketing_campaign_id": 7, "marketing_campaign_name": "Spring\x07sale\n" + "x" * 300}
    response = await post_signed(url, private_key, json.dumps([named]).encode())

    assert (response.status_code, response.json()) == result(1)
    campaign = (await client.get("/api/campaigns/sendgrid:campaign:7")).json()
    assert campaign["name"] == ("Spring sale\n" + "x" * 300)[:200]  # a bell is no part of a name; a line break is


async def test_a_delivery_of_more_events_than_a_request_may_carry_is_refused_whole(
    client: httpx.AsyncClient, sendgrid: tuple[str, ec.EllipticCurvePrivateKey], account: ApiAccount, db: Database
) -> None:
    url, private_key = sendgrid
    [delivered] = json.loads(fixture("delivered.json"))
    body = [{**delivered, "sg_event_id": f"event-{n}"} for n in range(20_000)]

    response = await post_signed(url, private_key, json.dumps(body).encode())

    assert (response.status_code, response.json()) == (400, too_many_events(20_000))
    assert await stored(db, account.id) == (0, 0)


async def test_a_campaign_a_webhook_names_with_slashes_and_signs_is_read_renamed_and_archived(
    client: httpx.AsyncClient, sendgrid: tuple[str, ec.EllipticCurvePrivateKey], account: ApiAccount, db: Database
) -> None:
    url, private_key = sendgrid
    category = "news//2026 spring?x#y 100%/"
    campaign_id = f"sendgrid:category:{category}"
    [delivered] = json.loads(fixture("delivered.json"))
    await post_signed(url, private_key, json.dumps([{**delivered, "category": [category]}]).encode())
    path = f"/api/campaigns/{quote(campaign_id, safe='')}"
    # The client's whole encoded id, as it goes out: every character that means something in a URL escaped.
    assert path == "/api/campaigns/sendgrid%3Acategory%3Anews%2F%2F2026%20spring%3Fx%23y%20100%25%2F"
    search = {"email": ALEX, "categories": ["email"], "start": "2017-01-01T00:00:00Z", "end": "2018-01-01T00:00:00Z"}

    read = await client.get(path)
    renamed = await client.put(path, json={"name": "Spring news", "channel": "email"})
    before = await report_for(client, ALEX, search["start"], search["end"])
    archived = await client.put(path, json={"name": "Spring news", "channel": "email", "archived": True})
    after = await report_for(client, ALEX, search["start"], search["end"])
    with_archived = await wait_done(client, (await create_report(client, **search, include_archived=True))["id"])

    campaign = {"id": campaign_id, "name": category, "channel": "email", "sent_at": None, "archived": False}
    assert (read.status_code, read.json()) == (200, campaign)
    assert (renamed.status_code, renamed.json()) == (200, {**campaign, "name": "Spring news"})
    assert [row["campaign"] for row in before] == [{"id": campaign_id, "name": "Spring news", "archived": False}]
    assert (archived.status_code, archived.json()) == (200, {**campaign, "name": "Spring news", "archived": True})
    assert (await client.get(path)).json() == {**campaign, "name": "Spring news", "archived": True}
    assert after == []
    assert [row["campaign"] for row in await all_rows(client, with_archived["id"])] == [
        {"id": campaign_id, "name": "Spring news", "archived": True}
    ]
    counts = await db.fetch_one(
        "SELECT (SELECT count(*) FROM events WHERE account_id = :a) AS hot, "
        "(SELECT count(*) FROM archived_events JOIN campaigns ON campaigns.pk = campaign_pk"
        " WHERE archived_events.account_id = :a AND campaigns.id = :c) AS archived",
        {"a": account.id, "c": campaign_id},
    )
    assert counts is not None and (counts["hot"], counts["archived"]) == (0, 1)
