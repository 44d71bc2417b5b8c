"""The Mailgun adapter on Mailgun's documented examples: what it makes of them, and whom it believes.

`sign` and `signed_body` sign a fixture as Mailgun would, with a key the test makes; the
end-to-end webhook test posts bodies made by them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contactreports.ingest import EventIn, to_new_events
from contactreports.webhooks.base import Delivery, Malformed, Parsed, Unauthorized
from contactreports.webhooks.mailgun import MAX_AGE_SECONDS, MAX_AHEAD_SECONDS, MailgunAdapter

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks" / "mailgun"
# The moment the tests pretend a delivery arrives, and Mailgun signed it.
NOW = 1_770_921_000
ADAPTER = MailgunAdapter()


def new_key() -> str:
    """A signing key shaped like Mailgun's: "key-" and 32 hex digits."""
    return f"key-{secrets.token_hex(16)}"


def sign(key: str, timestamp: str, token: str) -> str:
    """What Mailgun puts in `signature.signature`, written out apart from the adapter's own code."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def signed_body(fixture: str, key: str, timestamp: float, token: str | None = None) -> bytes:
    """The fixture's body with a signature block made with `key` at `timestamp`, as Mailgun posts it."""
    body = json.loads((FIXTURES / fixture).read_text())
    token = token or secrets.token_hex(25)
    stamp = str(int(timestamp))
    body["signature"] = {"token": token, "timestamp": stamp, "signature": sign(key, stamp, token)}
    return json.dumps(body).encode()


def delivery(body: bytes, received_at: float = NOW) -> Delivery:
    return Delivery(headers={"content-type": "application/json"}, body=body, received_at=received_at)


def with_signature(fixture: str, **signature: Any) -> bytes:
    body = json.loads((FIXTURES / fixture).read_text())
    body["signature"] = signature
    return json.dumps(body).encode()


def with_event_data(fixture: str, **changes: Any) -> bytes:
    body = json.loads((FIXTURES / fixture).read_text())
    body["event-data"].update(changes)
    return json.dumps(body).encode()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


RECIPIENT = "recipient@sample.mailgun.com"
OPENED_IN_CHROME = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/144.0.0.0 Safari/537.36"  # noqa: E501
CLICKED_ON_ANDROID = "Mozilla/5.0 (Linux; Android 9; itel A27) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/133.0.6943.143 Mobile Safari/537.36"  # noqa: E501
MAILBOX_UNAVAILABLE = (
    "5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
    "[BN3PEPF0000B36D.namprd21.prod.outlook.com 2026-02-12T17:42:55.527Z 08DE657A58651558]"
)


def one_event(
    action: str,
    occurred_at: str,
    mailgun_id: str,
    email: str = RECIPIENT,
    tag: str | None = "webhook_payload",
    **details: Any,
) -> Parsed:
    """What the adapter should make of a webhook: one event, of the campaign named by `tag`."""
    campaign_id = f"mailgun:tag:{tag}" if tag else None
    event = EventIn(
        email=email,
        action=action,
        occurred_at=at(occurred_at),
        id=f"mailgun:{mailgun_id}",
        campaign_id=campaign_id,
        details={"provider": "mailgun", **details},
    )
    return Parsed(events=[event], campaigns={campaign_id: tag} if tag else {})


# Each fixture and exactly what the adapter makes of it.
EXPECTED: dict[str, Parsed] = {
    "accepted.json": one_event(
        "email.sent",
        "2026-02-03T19:26:38.372891",
        "CCXMjJ7nQi2N3BPigGOdgQ",
        message_id="20260203192638.000be97f99f8cea1@sample.mailgun.com",
    ),
    "delivered.json": one_event(
        "email.delivered",
        "2026-02-03T19:20:31.658528",
        "MXcc2gEpS-eN8HfkOnmK2w",
        message_id="20260203192030.53383e583ab41f62@sample.mailgun.com",
    ),
    "opened.json": one_event(
        "email.opened",
        "2026-02-05T21:31:14.554933",
        "q7DMpbLFRKW1QuiLC9XV4Q",
        message_id="20260205213049.8e3a7bf607f78309@sample.mailgun.com",
        user_agent=OPENED_IN_CHROME,
        ip="38.142.208.162",
    ),
    # Apple Mail Privacy Protection fetched the pixel: Mailgun's client-info.bot is "apple".
    "opened-bot.json": one_event(
        "email.opened",
        "2022-05-18T14:17:15.279025",
        "added-by-contactreports-bot-open",
        email="bot@apple.com",
        tag=None,
        user_agent="Mozilla/5.0",
        machine_open=True,
    ),
    "clicked.json": one_event(
        "email.clicked",
        "2026-02-05T21:31:58.664868",
        "A9dLUrCXQjK92TlnW3zkIA",
        message_id="20260205213049.8e3a7bf607f78309@sample.mailgun.com",
        url="https://sample.mailgun.com",
        user_agent=CLICKED_ON_ANDROID,
        ip="9.169.124.21",
    ),
    "failed-permanent.json": one_event(
        "email.bounced",
        "2026-02-12T17:42:55.592369",
        "2kFItcrLQuKTdp-Ia2Xr7w",
        email="badrecipient@sample.mailgun.com",
        message_id="20260212174255.58bbb7ce85a423e5@mailgun.com",
        provider_event="bounce",
        bounce_type="hard",
        reason=MAILBOX_UNAVAILABLE,
    ),
    # Mailgun retries the message: a delay, counted, not stored.
    "failed-temporary.json": Parsed(ignored={"temporary_fail": 1}),
    # The unsubscribe is from every tag ("*"): no campaign.
    "unsubscribed.json": one_event(
        "email.unsubscribed",
        "2026-02-05T21:31:30.465629",
        "89QcW8YuSv6lhSeN3n4qnA",
        tag=None,
        message_id="20260205213049.8e3a7bf607f78309@sample.mailgun.com",
        user_agent=OPENED_IN_CHROME,
        ip="38.142.208.162",
    ),
    "complained.json": one_event(
        "email.spam_reported",
        "2026-02-12T18:26:12.268414",
        "rIVDlyk8SY-mJauQoYmNFA",
        message_id="20260212182531.0d5ed3254c319957@sample.mailgun.com",
    ),
}


def test_every_fixture_has_its_expectation() -> None:
    assert sorted(path.name for path in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_a_documented_example_parses_into_exactly_these_events(fixture: str) -> None:
    token = secrets.token_hex(25)
    parsed = ADAPTER.parse(delivery(signed_body(fixture, new_key(), NOW, token)))
    # The signature's token may sign this one body, for as long as the signature is believed.
    signed_for = MAX_AGE_SECONDS + MAX_AHEAD_SECONDS
    assert parsed == msgspec.structs.replace(
        EXPECTED[fixture], nonce=token, nonce_signed_at=NOW, nonce_seconds=signed_for
    )
    # The events pass the checks every way in applies.
    assert len(to_new_events(parsed.events, max_details_bytes=16_384)) == len(parsed.events)


def test_a_permanent_failure_after_soft_bounces_keeps_mailgun_s_bounce_type() -> None:
    body = json.loads((FIXTURES / "failed-permanent.json").read_text())
    body["event-data"]["delivery-status"].update({"bounce-type": "soft", "message": "", "description": None})
    body["event-data"]["reason"] = "old"
    [event] = ADAPTER.parse(delivery(json.dumps(body).encode())).events
    assert event.details == {
        "provider": "mailgun",
        "message_id": "20260212174255.58bbb7ce85a423e5@mailgun.com",
        "provider_event": "old",
        "bounce_type": "soft",
        "reason": "old",
    }


def failure(reason: str, message: str = "", bounce_type: str | None = None) -> dict[str, Any]:
    """The details of the permanent failure example with Mailgun's `reason`, `message` and `bounce-type`."""
    body = json.loads((FIXTURES / "failed-permanent.json").read_text())
    body["event-data"]["reason"] = reason
    body["event-data"]["delivery-status"].update({"bounce-type": bounce_type, "message": message, "code": 605})
    [event] = ADAPTER.parse(delivery(json.dumps(body).encode())).events
    assert event.action == "email.bounced"
    return event.details or {}


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("suppress-bounce", "Not delivering to previously bounced address"),
        ("suppress-unsubscribe", "Not delivering to unsubscribed address"),
        ("suppress-complaint", "Not delivering to a user who marked your messages as spam"),
    ],
)
@pytest.mark.parametrize("bounce_type", [None, "hard"])
def test_a_send_mailgun_suppressed_is_a_bounce_without_bounce_type(
    reason: str, message: str, bounce_type: str | None
) -> None:
    # Mailgun did not send: no receiving server bounced it, whatever bounce-type it repeats.
    assert failure(reason, message, bounce_type) == {
        "provider": "mailgun",
        "message_id": "20260212174255.58bbb7ce85a423e5@mailgun.com",
        "provider_event": reason,
        "reason": message,
    }


@pytest.mark.parametrize(
    ("reason", "bounce_type", "expected"),
    [
        ("bounce", None, "hard"),  # a bounce Mailgun does not type: permanent, so hard
        ("bounce", "soft", "soft"),
        ("old", "soft", "soft"),
        ("old", None, None),  # given up on without saying how the attempts failed
        ("generic", None, None),
        ("generic", "hard", "hard"),
    ],
)
def test_only_a_bounce_gets_a_bounce_type(reason: str, bounce_type: str | None, expected: str | None) -> None:
    details = failure(reason, "5.0.0 refused", bounce_type)
    assert (details["provider_event"], details.get("bounce_type")) == (reason, expected)


def test_the_first_tag_names_the_campaign() -> None:
    parsed = ADAPTER.parse(delivery(with_event_data("delivered.json", tags=["*", "spring-sale", "march"])))
    assert parsed.events[0].campaign_id == "mailgun:tag:spring-sale"
    assert parsed.campaigns == {"mailgun:tag:spring-sale": "spring-sale"}


@pytest.mark.parametrize("event", ["rejected", "stored", "list_member_uploaded"])
def test_an_event_type_we_do_not_map_is_counted(event: str) -> None:
    parsed = ADAPTER.parse(delivery(with_event_data("accepted.json", event=event)))
    assert (parsed.events, parsed.ignored) == ([], {event: 1})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"event=delivered&recipient=ann%40example.com", "not a Mailgun webhook: JSON is malformed"),
        (b"[]", "not a Mailgun webhook: Expected `object`, got `array`"),
        (b'{"other": {}}', "not a Mailgun webhook: Object missing required field `event-data`"),
        (
            with_event_data("delivered.json", tags="webhook_payload"),
            "Expected `array`, got `str` - at `$.event-data.tags`",
        ),
        (with_event_data("delivered.json", recipient=None), "a Mailgun delivered event needs event-data.id and"),
        (with_event_data("opened.json", id=""), "a Mailgun opened event needs event-data.id and"),
        (with_event_data("failed-permanent.json", severity="fatal"), "severity is permanent or temporary, not 'fatal'"),
        (with_event_data("clicked.json", timestamp=1e20), "event-data.timestamp: 1e+20 is out of range"),
    ],
)
def test_a_body_not_in_mailgun_s_format_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(Malformed, match=re.escape(message)):
        ADAPTER.parse(delivery(body))


async def test_a_delivery_signed_with_the_key_is_believed() -> None:
    key = new_key()
    await ADAPTER.verify(delivery(signed_body("delivered.json", key, NOW)), key)


async def test_a_subaccount_s_event_is_believed_on_the_primary_account_s_key() -> None:
    primary, subaccount = new_key(), new_key()
    token = secrets.token_hex(25)
    body = with_signature(
        "opened.json",
        token=token,
        timestamp=str(NOW),
        signature=sign(subaccount, str(NOW), token),
        **{"parent-signature": sign(primary, str(NOW), token)},
    )
    await ADAPTER.verify(delivery(body), primary)
    await ADAPTER.verify(delivery(body), subaccount)
    with pytest.raises(Unauthorized, match="does not match"):
        await ADAPTER.verify(delivery(body), new_key())


async def test_a_timestamp_sent_as_a_number_is_signed_as_its_digits() -> None:
    key, token = new_key(), secrets.token_hex(25)
    body = with_signature("opened.json", token=token, timestamp=NOW, signature=sign(key, str(NOW), token))
    await ADAPTER.verify(delivery(body), key)


def tampered(key: str, **change: str) -> bytes:
    token = secrets.token_hex(25)
    signature = {"token": token, "timestamp": str(NOW), "signature": sign(key, str(NOW), token)}
    return with_signature("delivered.json", **{**signature, **change})


@pytest.mark.parametrize(
    "change",
    [
        {"token": secrets.token_hex(25)},
        {"timestamp": str(NOW + 1)},
        {"signature": "0" * 64},
        {"signature": "é" * 64},
        {"signature": ""},
    ],
    ids=["token", "timestamp", "signature", "non-ascii signature", "empty signature"],
)
async def test_a_tampered_signature_is_refused(change: dict[str, str]) -> None:
    key = new_key()
    with pytest.raises(Unauthorized, match="does not match the account's Mailgun signing key"):
        await ADAPTER.verify(delivery(tampered(key, **change)), key)


async def test_a_signature_made_with_another_key_is_refused() -> None:
    with pytest.raises(Unauthorized, match="does not match"):
        await ADAPTER.verify(delivery(signed_body("delivered.json", new_key(), NOW)), new_key())


async def test_the_documentation_s_made_up_signature_is_refused() -> None:
    with pytest.raises(Unauthorized, match="does not match"):
        await ADAPTER.verify(delivery((FIXTURES / "delivered.json").read_bytes()), new_key())


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"event-data": {"event": "delivered"}}).encode(),
        json.dumps({"signature": {"token": "t", "timestamp": "1"}, "event-data": {}}).encode(),
        b"signature=abc&timestamp=1&token=t",
        b"",
    ],
    ids=["no signature", "no signature field", "form-encoded", "empty"],
)
async def test_a_delivery_without_a_signature_is_refused(body: bytes) -> None:
    with pytest.raises(Unauthorized, match="no Mailgun signature in the body"):
        await ADAPTER.verify(delivery(body), new_key())


@pytest.mark.parametrize("timestamp", ["soon", "9" * 400])
async def test_a_signed_timestamp_that_is_not_a_time_is_refused(timestamp: str) -> None:
    key, token = new_key(), secrets.token_hex(25)
    body = with_signature("delivered.json", token=token, timestamp=timestamp, signature=sign(key, timestamp, token))
    with pytest.raises(Unauthorized, match=f"'{timestamp}' is not a time"):
        await ADAPTER.verify(delivery(body), key)


@pytest.mark.parametrize(
    ("signed_at", "believed"),
    [
        (NOW - MAX_AGE_SECONDS, True),
        (NOW - MAX_AGE_SECONDS - 1, False),
        (NOW + MAX_AHEAD_SECONDS, True),
        (NOW + MAX_AHEAD_SECONDS + 1, False),
    ],
    ids=["oldest believed", "stale", "furthest ahead believed", "too far ahead"],
)
async def test_a_signature_is_believed_only_within_its_time_window(signed_at: int, believed: bool) -> None:
    key = new_key()
    verifying = ADAPTER.verify(delivery(signed_body("clicked.json", key, signed_at)), key)
    if believed:
        await verifying
    else:
        with pytest.raises(Unauthorized, match="stale or replayed"):
            await verifying


@pytest.mark.parametrize(
    "key",
    [
        "key-0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef-01234567-89abcdef",
    ],
)
def test_a_plausible_signing_key_is_taken(key: str) -> None:
    assert ADAPTER.check_secret(key) is None


@pytest.mark.parametrize(
    "key",
    [
        "",
        "key-123",
        " key-0123456789abcdef0123456789abcdef",
        "key-0123456789abcdef 0123456789abcdef",
        "clé-" + "0" * 32,
    ],
    ids=["empty", "short", "leading space", "inner space", "not ascii"],
)
def test_an_implausible_signing_key_is_refused(key: str) -> None:
    assert ADAPTER.check_secret(key) == (
        "a Mailgun webhook signing key is 16 to 256 printable characters without spaces, "
        "such as key-0123456789abcdef0123456789abcdef; paste the key alone"
    )
