"""The Brevo adapter on Brevo's documented example payloads (tests/fixtures/webhooks/brevo)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ApiAccount
from contactreports.ingest import EventIn
from contactreports.models import FieldError
from contactreports.store.database import Database
from contactreports.webhooks.base import Delivery, Malformed, Parsed, Unauthorized
from contactreports.webhooks.brevo import BrevoAdapter
from helpers import in_order, report_for, result, stored, too_many_events, webhook_url

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks" / "brevo"
TOKEN = "Zk3m-Qp8_wR2vT6yX9aB"
BREVO = BrevoAdapter()

EMAIL = "example@domain.com"
MESSAGE_ID = "201798300811.5787683@relay.domain.com"
# ts_event of the transactional and of the marketing examples.
TRANSACTIONAL_AT = datetime(2020, 11, 9, 14, 54, 14, tzinfo=UTC)
MARKETING_AT = datetime(2020, 11, 9, 14, 55, 37, tzinfo=UTC)
TAG = "brevo:tag:transac_messages"
CAMPAIGN = "brevo:campaign:12"
USER_AGENT = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def transactional(event_id: str, action: str, campaign: str = TAG, **details: Any) -> EventIn:
    details = {"provider": "brevo", "message_id": MESSAGE_ID, **details}
    return EventIn(EMAIL, action, TRANSACTIONAL_AT, event_id, campaign, details)


def marketing(event_id: str, action: str, **details: Any) -> EventIn:
    return EventIn(EMAIL, action, MARKETING_AT, event_id, CAMPAIGN, {"provider": "brevo", **details})


def bounced(event_id: str, provider_event: str, bounce_type: str | None, **details: Any) -> EventIn:
    if bounce_type is not None:
        details["bounce_type"] = bounce_type
    return transactional(event_id, "email.bounced", provider_event=provider_event, **details)


DOWN = "server is down"
# Ids are pinned: a stored event's id must not change, or a redelivery after an upgrade
# would be stored twice. `opened` and `unique_opened` report one open: one id.
EXPECTED = {
    "request": transactional("brevo:9facac24cad28dd6fa72138ce684317a", "email.sent", provider_event="request"),
    "delivered": transactional("brevo:0990ad54639aedef6607685f7719647c", "email.delivered", provider_event="delivered"),
    "opened": transactional(
        "brevo:91bebf958624dd9906623ee0577e0c12", "email.opened", provider_event="opened", user_agent=USER_AGENT
    ),
    "unique_opened": transactional(
        "brevo:91bebf958624dd9906623ee0577e0c12", "email.opened", provider_event="unique_opened"
    ),
    "click": transactional(
        "brevo:013c26e4e11a834d59460ad074a2b08a",
        "email.clicked",
        provider_event="click",
        url="https://domain.com/product",
        user_agent=USER_AGENT,
    ),
    "hard_bounce": bounced("brevo:5d2f9c6f009b72b4a6d8c09e928adc2c", "hard_bounce", "hard", reason=DOWN),
    "soft_bounce": bounced("brevo:9fc3ae67da28d3d7864cac551b095bfc", "soft_bounce", "soft", reason=DOWN),
    # Brevo did not send to an address on its blocklist: no server bounced it, so no bounce_type.
    "blocked": bounced("brevo:ab6f9ebfaed56808d361893e41c31ce7", "blocked", None),
    "invalid_email": bounced("brevo:218fe688711c19b910ee8e24bd5511a1", "invalid_email", "hard"),
    "spam": transactional("brevo:101de78e8619ebd9f1ef891e76a95b1b", "email.spam_reported", provider_event="spam"),
    "unsubscribed": transactional(
        "brevo:89e13f6455d29737f7c7c82c79b54734",
        "email.unsubscribed",
        campaign="brevo:tag:transactionalTag",
        provider_event="unsubscribed",
        user_agent=USER_AGENT,
    ),
    "marketing_spam": marketing(
        "brevo:2de2a8bbd180bc115339ffeb8c6ea624", "email.spam_reported", provider_event="spam", reason="undesired"
    ),
    "marketing_opened": marketing("brevo:ab2c7e384156fdec4ea8de8cb5eb8980", "email.opened", provider_event="opened"),
    "marketing_click": marketing(
        "brevo:747c40130b31e6cb58bd8a440942d99e",
        "email.clicked",
        provider_event="click",
        url="https://myCampaignUrl.net",
    ),
    "marketing_hard_bounce": marketing(
        "brevo:883d0d05f500171bedb7f3c6e6829adf",
        "email.bounced",
        provider_event="hard_bounced",
        bounce_type="hard",
        reason="deferred",
    ),
    "marketing_unsubscribed": marketing(
        "brevo:d610c5077a0470edd841993f80fc585a", "email.unsubscribed", provider_event="unsubscribed"
    ),
}
CAMPAIGN_NAMES = {
    TAG: "transac_messages",
    "brevo:tag:transactionalTag": "transactionalTag",
    CAMPAIGN: "My First Campaign",
}
IGNORED = {
    "deferred": {"deferred": 1},
    "error": {"error": 1},
    "marketing_list_addition": {"list_addition": 1},
    # Brevo's own example of it has an empty email: no contact to give it to.
    "unique_proxy_open": {"unique_proxy_open without email": 1},
}


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def delivery(body: bytes, headers: dict[str, str] | None = None) -> Delivery:
    return Delivery(headers=headers or {}, body=body, received_at=0.0)


def parse(body: bytes) -> Parsed:
    return BREVO.parse(delivery(body))


def test_every_fixture_is_tested() -> None:
    assert {path.stem for path in FIXTURES.glob("*.json")} == EXPECTED.keys() | IGNORED.keys()


@pytest.mark.parametrize("name", EXPECTED)
def test_each_documented_event_becomes_its_event(name: str) -> None:
    expected = EXPECTED[name]
    assert parse(fixture(name)) == in_order(
        events=[expected], campaigns={expected.campaign_id: CAMPAIGN_NAMES[expected.campaign_id]}
    )


@pytest.mark.parametrize("name", IGNORED)
def test_unmapped_events_are_counted_not_stored(name: str) -> None:
    assert parse(fixture(name)) == Parsed(ignored=IGNORED[name])


def test_a_batch_is_an_array_of_the_same_events() -> None:
    names = [*EXPECTED, *IGNORED]
    body = b"[" + b",".join(fixture(name) for name in names) + b"]"
    assert parse(body) == Parsed(
        events=list(EXPECTED.values()),
        positions=list(range(len(EXPECTED))),
        campaigns=CAMPAIGN_NAMES,
        ignored={name: count for counts in IGNORED.values() for name, count in counts.items()},
    )
    assert parse(b"[]") == Parsed()


def edited(name: str, **fields: Any) -> bytes:
    return json.dumps({**json.loads(fixture(name)), **fields}).encode()


def test_a_proxy_open_is_a_machine_open() -> None:
    # Brevo's example, given the recipient it lacks.
    [event] = parse(edited("unique_proxy_open", email=EMAIL)).events
    assert event == EventIn(
        EMAIL,
        "email.opened",
        datetime(2024, 8, 22, 10, 33, 29, tzinfo=UTC),
        "brevo:9855739d3141a4a84ced8e749c5447ad",
        "brevo:tag:this_tag",
        {
            "provider": "brevo",
            "provider_event": "unique_proxy_open",
            "message_id": "an#2705147202202651768",
            "user_agent": "Mozilla/5.0",
            "machine_open": True,
        },
    )
    [plain] = parse(edited("unique_proxy_open", email=EMAIL, event="proxy_open")).events
    assert plain.id == event.id


def test_each_open_and_click_has_its_own_id() -> None:
    later = parse(edited("opened", ts_event=1604933655)).events[0]
    other_link = parse(edited("click", link="https://domain.com/other")).events[0]
    other_recipient = parse(edited("click", email="other@domain.com")).events[0]
    ids = {EXPECTED["opened"].id, later.id, EXPECTED["click"].id, other_link.id, other_recipient.id}
    assert len(ids) == 5


def test_a_redelivery_has_the_same_ids() -> None:
    assert parse(fixture("click")) == parse(fixture("click"))


def test_a_plain_tag_string_and_the_campaign_name_spelt_with_underscore() -> None:
    without_tags = {key: value for key, value in json.loads(fixture("delivered")).items() if key != "tags"}
    tagged = parse(json.dumps({**without_tags, "tag": "receipts"}).encode())
    assert (tagged.events[0].campaign_id, tagged.campaigns) == (
        "brevo:tag:receipts",
        {"brevo:tag:receipts": "receipts"},
    )
    assert parse(json.dumps(without_tags).encode()).events[0].campaign_id is None
    spam = json.loads(fixture("marketing_spam"))
    spam["campaign_name"] = spam.pop("campaign name")
    assert parse(json.dumps(spam).encode()).campaigns == {CAMPAIGN: "My First Campaign"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'"delivered"', "not a Brevo email event or array of them: body: Expected `object | array`, got `str`"),
        (b'{"email": "a@b.com"}', "not a Brevo email event or array of them: [0].event: Object missing required field"),
        (b"[1]", "not a Brevo email event or array of them: [0]: Expected `object`, got `int`"),
        # Without its type an event cannot even be counted as ignored.
        (
            b'[{"event": "opened", "email": "a@b.com", "ts_event": 1}, {"event": 7}]',
            "not a Brevo email event or array of them: [1].event: Expected `str`, got `int`",
        ),
    ],
)
def test_a_body_that_is_not_brevos_format_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(Malformed, match=re.escape(message)):
        parse(body)


OPENED = {"event": "opened", "email": EMAIL, "ts_event": 1604933654}
DELIVERED = {"event": "delivered", "email": "a@b.com"}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (DELIVERED, ("ts_event", "missing from a Brevo 'delivered' event")),
        (DELIVERED | {"ts_event": "soon"}, ("ts_event", "Expected `int | null`, got `str`")),
        (DELIVERED | {"ts_event": 1604933654000000}, ("ts_event", "1604933654000000 is out of range")),
        # JSON's longest integers (4,300 digits) overflow a float; quoted cut short.
        (DELIVERED | {"ts_event": int("9" * 4300)}, ("ts_event", "9" * 39 + "… is out of range")),
        (DELIVERED | {"ts_event": 1, "tags": "x"}, ("tags", "Expected `array | null`, got `str`")),
    ],
)
def test_an_event_with_a_bad_field_is_set_aside_by_its_place_in_the_batch(bad: dict, error: tuple[str, str]) -> None:
    # An event counted as ignored before it: the position is the batch's, not among the events kept.
    body = json.dumps([OPENED, {"event": "list_addition"}, bad, OPENED | {"ts_event": 1604933655}]).encode()

    parsed = parse(body)

    assert (parsed.positions, parsed.rejected) == ([0, 3], [FieldError(f"[2].{error[0]}", error[1])])
    assert [event.occurred_at.second for event in parsed.events] == [14, 15]
    assert parsed.ignored == {"list_addition": 1}


def test_a_single_event_with_a_bad_field_is_set_aside_as_the_first() -> None:
    parsed = parse(b'{"event": "delivered", "email": "a@b.com"}')

    assert parsed == Parsed(rejected=[FieldError("[0].ts_event", "missing from a Brevo 'delivered' event")])


def test_an_ignored_event_is_counted_whatever_its_other_fields() -> None:
    assert parse(b'[{"event": "list_addition", "ts_event": "soon", "tags": 5}]') == Parsed(ignored={"list_addition": 1})


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}", f"bearer  {TOKEN}", basic("brevo", TOKEN), basic("", TOKEN)]
)
async def test_the_token_as_bearer_or_basic_password_is_accepted(authorization: str) -> None:
    await BREVO.verify(delivery(fixture("request"), {"authorization": authorization}), TOKEN)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "no Authorization header"),
        ({"authorization": f"Bearer {TOKEN}x"}, "does not carry this account's Brevo token"),
        ({"authorization": "Bearer "}, "does not carry this account's Brevo token"),
        ({"authorization": basic(TOKEN, "wrong")}, "does not carry this account's Brevo token"),
        ({"authorization": "Basic " + base64.b64encode(TOKEN.encode()).decode()}, "not base64 of user:password"),
        ({"authorization": "Basic !!not-base64!!"}, "not base64 of user:password"),
        ({"authorization": "Basic \xe9t\xe9"}, "not base64 of user:password"),
        ({"authorization": "Basic " + base64.b64encode(b"brevo:\xff").decode()}, "not base64 of user:password"),
        ({"authorization": f"Bearer {TOKEN[:-1]}\xe9"}, "does not carry this account's Brevo token"),
        ({"authorization": f"Token {TOKEN}"}, "must be Bearer <token> or Basic credentials"),
        ({"authorization": TOKEN}, "must be Bearer <token> or Basic credentials"),
    ],
)
async def test_a_missing_or_wrong_token_is_unauthorized(headers: dict[str, str], message: str) -> None:
    with pytest.raises(Unauthorized, match=message):
        await BREVO.verify(delivery(fixture("request"), headers), TOKEN)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (TOKEN, None),
        ("a" * 16, None),
        ("a" * 15, "at least 16 characters"),
        ("", "at least 16 characters"),
        ("correct horse battery", "printable ASCII without spaces"),
        ("tab\tseparated-token-value", "printable ASCII without spaces"),
        ("zwölf-zeichen-und-mehr", "printable ASCII without spaces"),
    ],
)
def test_check_secret_wants_a_long_token_without_spaces(secret: str, problem: str | None) -> None:
    result = BREVO.check_secret(secret)
    assert result == problem if problem is None else problem in result


# End to end: the fixtures posted over HTTP to the live API, as Brevo posts them.

TRANSACTIONAL = [name for name in [*EXPECTED, *IGNORED] if not name.startswith("marketing_")]
MARKETING = [name for name in [*EXPECTED, *IGNORED] if name.startswith("marketing_")]


def brevo_row(event: EventIn, campaign_name: str) -> dict:
    return {
        "occurred_at": event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "action": event.action,
        "category": "email",
        "campaign": {"id": event.campaign_id, "name": campaign_name, "archived": False},
        "details": event.details,
    }


async def test_brevos_documented_payloads_make_a_contact_report(client: httpx.AsyncClient) -> None:
    url = await webhook_url(client, "brevo", TOKEN)
    batch = b"[" + b",".join(fixture(name) for name in MARKETING) + b"]"

    async with httpx.AsyncClient() as brevo:

        async def post_all() -> list[tuple[int, dict]]:
            # Transactional events one a request with the bearer token; marketing ones as one
            # batch, with the token as the password in the URL (httpx sends it as basic auth).
            bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
            responses = [await brevo.post(url, content=fixture(name), headers=bearer) for name in TRANSACTIONAL]
            responses.append(await brevo.post(url.replace("://", f"://brevo:{TOKEN}@", 1), content=batch))
            return [(response.status_code, response.json()) for response in responses]

        first = await post_all()
        again = await post_all()

    stored_once = {"ingested": 1, "duplicates": 0, "ignored": {}, "rejected": []}
    duplicate = {"ingested": 0, "duplicates": 1, "ignored": {}, "rejected": []}
    expected_first = [
        (200, {"ingested": 0, "duplicates": 0, "ignored": IGNORED[name], "rejected": []})
        if name in IGNORED
        # `unique_opened` is the open `opened` already stored.
        else (200, duplicate if name == "unique_opened" else stored_once)
        for name in TRANSACTIONAL
    ]
    marketing_batch = {"ingested": 5, "duplicates": 0, "ignored": {"list_addition": 1}, "rejected": []}
    assert first == [*expected_first, (200, marketing_batch)]
    # Redelivered, everything is a duplicate.
    assert again == [
        (status, {**body, "ingested": 0, "duplicates": body["ingested"] + body["duplicates"]}) for status, body in first
    ]
    stored = [name for name in EXPECTED if name != "unique_opened"]
    assert await report_for(client, EMAIL, "2020-11-01T00:00:00Z", "2020-12-01T00:00:00Z") == [
        brevo_row(EXPECTED[name], CAMPAIGN_NAMES[EXPECTED[name].campaign_id]) for name in stored
    ]
    assert (await client.get("/api/campaigns")).json()["items"] == [
        {"id": campaign_id, "name": name, "channel": "email", "sent_at": None, "archived": False}
        for campaign_id, name in sorted(CAMPAIGN_NAMES.items())
    ]


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "no Authorization header: set the Brevo webhook's bearer token or URL credentials"),
        (
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            "the Authorization header does not carry this account's Brevo token",
        ),
    ],
)
async def test_a_delivery_without_the_token_stores_nothing(
    client: httpx.AsyncClient, headers: dict[str, str], detail: str
) -> None:
    url = await webhook_url(client, "brevo", TOKEN)

    async with httpx.AsyncClient() as brevo:
        response = await brevo.post(url, content=fixture("delivered"), headers=headers)

    problem = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": detail}
    assert (response.status_code, response.json()) == (401, problem)
    assert await report_for(client, EMAIL, "2020-11-01T00:00:00Z", "2020-12-01T00:00:00Z") == []
    assert (await client.get("/api/campaigns")).json()["items"] == []


async def test_a_batchs_bad_events_are_set_aside_by_their_place_in_it_and_the_others_stored(
    client: httpx.AsyncClient,
) -> None:
    url = await webhook_url(client, "brevo", TOKEN)
    body = [
        json.loads(fixture("delivered")),
        {"event": "list_addition"},
        {**OPENED, "email": "not an address"},  # refused by the route's checks
        {"event": "delivered", "email": EMAIL},  # set aside by the adapter: no ts_event
        json.loads(fixture("opened")),
    ]

    async with httpx.AsyncClient() as brevo:
        response = await brevo.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    assert (response.status_code, response.json()) == (
        200,
        {
            "ingested": 2,
            "duplicates": 0,
            "ignored": {"list_addition": 1},
            "rejected": [
                {"field": "[2].email", "message": "not an email address"},
                {"field": "[3].ts_event", "message": "missing from a Brevo 'delivered' event"},
            ],
        },
    )
    rows = await report_for(client, EMAIL, "2020-11-01T00:00:00Z", "2020-12-01T00:00:00Z")
    assert [row["action"] for row in rows] == ["email.delivered", "email.opened"]


def delivered_events(count: int, first: int = 0) -> bytes:
    """A batch of `count` delivered events, each its own (a time of its own, from `first` seconds on)."""
    delivered = json.loads(fixture("delivered"))
    events = [{**delivered, "ts_event": delivered["ts_event"] + first + n} for n in range(count)]
    return json.dumps(events).encode()


async def test_a_delivery_of_more_events_than_a_request_may_carry_is_refused_whole(
    client: httpx.AsyncClient, account: ApiAccount, db: Database
) -> None:
    url = await webhook_url(client, "brevo", TOKEN)

    async with httpx.AsyncClient() as brevo:
        response = await brevo.post(url, content=delivered_events(20_000), headers={"Authorization": f"Bearer {TOKEN}"})

    assert (response.status_code, response.json()) == (400, too_many_events(20_000))
    assert await stored(db, account.id) == (0, 0)


async def test_two_large_deliveries_at_once_are_stored_whole_while_other_requests_are_answered(
    api: str, client: httpx.AsyncClient, account: ApiAccount, db: Database
) -> None:
    # Parsing and checking 10,000 events takes a few hundred milliseconds of CPU, done in a worker
    # thread (test_webhooks.py::test_large_deliveries_are_worked_on_in_a_thread_small_ones_at_once).
    # How long other requests wait meanwhile depends on the machine's load: that is a benchmark's
    # question, not a test's.
    url = await webhook_url(client, "brevo", TOKEN)
    bodies = [delivered_events(10_000, first) for first in (0, 10_000)]
    health: list[int] = []

    async with httpx.AsyncClient(timeout=30) as brevo, httpx.AsyncClient(base_url=api) as monitor:
        posting = asyncio.gather(
            *(brevo.post(url, content=body, headers={"Authorization": f"Bearer {TOKEN}"}) for body in bodies)
        )
        while not posting.done():
            health.append((await monitor.get("/health")).status_code)
        responses = await posting

    assert [(response.status_code, response.json()) for response in responses] == [(200, result(ingested=10_000))] * 2
    assert await stored(db, account.id) == (20_000, 1)
    assert set(health) == {200}
