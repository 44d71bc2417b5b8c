"""Mailgun's documented payloads, signed with a key the test makes, posted to the live API over HTTP."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from test_webhook_mailgun import FIXTURES, new_key, sign, signed_body

from conftest import ApiAccount, service_env, start_api
from contactreports.store.database import Database
from helpers import report_for, result, stored, webhook_url

TAGGED = {"id": "mailgun:tag:webhook_payload", "name": "webhook_payload", "archived": False}
CHROME_ON_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/144.0.0.0 Safari/537.36"
)
RECIPIENT_ROWS = [
    {
        "occurred_at": "2026-02-03T19:20:31.658Z",
        "action": "email.delivered",
        "category": "email",
        "campaign": TAGGED,
        "details": {"provider": "mailgun", "message_id": "20260203192030.53383e583ab41f62@sample.mailgun.com"},
    },
    {
        "occurred_at": "2026-02-03T19:26:38.372Z",
        "action": "email.sent",
        "category": "email",
        "campaign": TAGGED,
        "details": {"provider": "mailgun", "message_id": "20260203192638.000be97f99f8cea1@sample.mailgun.com"},
    },
    {
        "occurred_at": "2026-02-05T21:31:14.554Z",
        "action": "email.opened",
        "category": "email",
        "campaign": TAGGED,
        "details": {
            "provider": "mailgun",
            "message_id": "20260205213049.8e3a7bf607f78309@sample.mailgun.com",
            "user_agent": CHROME_ON_MAC,
            "ip": "38.142.208.162",
        },
    },
    {
        "occurred_at": "2026-02-05T21:31:30.465Z",
        "action": "email.unsubscribed",
        "category": "email",
        "campaign": None,
        "details": {
            "provider": "mailgun",
            "message_id": "20260205213049.8e3a7bf607f78309@sample.mailgun.com",
            "user_agent": CHROME_ON_MAC,
            "ip": "38.142.208.162",
        },
    },
    {
        "occurred_at": "2026-02-05T21:31:58.664Z",
        "action": "email.clicked",
        "category": "email",
        "campaign": TAGGED,
        "details": {
            "provider": "mailgun",
            "message_id": "20260205213049.8e3a7bf607f78309@sample.mailgun.com",
            "url": "https://sample.mailgun.com",
            "user_agent": (
                "Mozilla/5.0 (Linux; Android 9; itel A27) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/133.0.6943.143 Mobile Safari/537.36"
            ),
            "ip": "9.169.124.21",
        },
    },
    {
        "occurred_at": "2026-02-12T18:26:12.268Z",
        "action": "email.spam_reported",
        "category": "email",
        "campaign": TAGGED,
        "details": {"provider": "mailgun", "message_id": "20260212182531.0d5ed3254c319957@sample.mailgun.com"},
    },
]
BOUNCED_ROWS = [
    {
        "occurred_at": "2026-02-12T17:42:55.592Z",
        "action": "email.bounced",
        "category": "email",
        "campaign": TAGGED,
        "details": {
            "provider": "mailgun",
            "message_id": "20260212174255.58bbb7ce85a423e5@mailgun.com",
            "provider_event": "bounce",
            "bounce_type": "hard",
            "reason": (
                "5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
                "[BN3PEPF0000B36D.namprd21.prod.outlook.com 2026-02-12T17:42:55.527Z 08DE657A58651558]"
            ),
        },
    }
]
BOT_ROWS = [
    {
        "occurred_at": "2022-05-18T14:17:15.279Z",
        "action": "email.opened",
        "category": "email",
        "campaign": None,
        "details": {"provider": "mailgun", "user_agent": "Mozilla/5.0", "machine_open": True},
    }
]


def problem(status: int, title: str, detail: str, **extra: object) -> dict:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}


async def test_mailguns_documented_payloads_make_a_contact_report(client: httpx.AsyncClient) -> None:
    key = new_key()
    url = await webhook_url(client, "mailgun", key)
    fixtures = sorted(path.name for path in FIXTURES.glob("*.json"))

    async with httpx.AsyncClient() as mailgun:
        first = {name: await mailgun.post(url, content=signed_body(name, key, time.time())) for name in fixtures}
        # Signed again, as a retry or a second webhook for the same event would be.
        again = {name: await mailgun.post(url, content=signed_body(name, key, time.time())) for name in fixtures}

    stored = {"ingested": 1, "duplicates": 0, "ignored": {}, "rejected": []}
    retry_delay = {"ingested": 0, "duplicates": 0, "ignored": {"temporary_fail": 1}, "rejected": []}
    expected = {name: retry_delay if name == "failed-temporary.json" else stored for name in fixtures}
    assert {name: (r.status_code, r.json()) for name, r in first.items()} == {
        name: (200, body) for name, body in expected.items()
    }
    duplicate = {"ingested": 0, "duplicates": 1, "ignored": {}, "rejected": []}
    assert {name: (r.status_code, r.json()) for name, r in again.items()} == {
        name: (200, retry_delay if name == "failed-temporary.json" else duplicate) for name in fixtures
    }
    start, end = "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"
    assert await report_for(client, "recipient@sample.mailgun.com", start, end) == RECIPIENT_ROWS
    assert await report_for(client, "badrecipient@sample.mailgun.com", start, end) == BOUNCED_ROWS
    assert await report_for(client, "tempfailrecipient@sample.mailgun.com", start, end) == []
    assert await report_for(client, "bot@apple.com", "2022-01-01T00:00:00Z", "2023-01-01T00:00:00Z") == BOT_ROWS
    assert (await client.get("/api/campaigns")).json()["items"] == [
        {"id": "mailgun:tag:webhook_payload", "name": "webhook_payload", "channel": "email", "sent_at": None,
         "archived": False}
    ]  # fmt: skip


def resigned(key: str, signed_at: str, **change: str) -> bytes:
    """delivered.json signed with `key` at `signed_at`, then a field of the signature changed."""
    body = json.loads((FIXTURES / "delivered.json").read_text())
    token = "t" * 50
    body["signature"] = {"token": token, "timestamp": signed_at, "signature": sign(key, signed_at, token), **change}
    return json.dumps(body).encode()


NO_MATCH = "the signature does not match the account's Mailgun signing key"
NO_RECIPIENT = "a Mailgun delivered event needs event-data.id and event-data.recipient"


# (what is wrong, status, the answer's detail as a pattern)
REFUSED = [
    ("token", 401, re.escape(NO_MATCH)),
    ("timestamp", 401, re.escape(NO_MATCH)),
    ("other key", 401, re.escape(NO_MATCH)),
    # Ten hours old, give or take the second the request takes.
    ("stale", 401, r"the signature is 3600[01] seconds old, outside -300 to 32400: stale or replayed"),
    ("no signature", 401, re.escape("no Mailgun signature in the body: Object missing required field `signature`")),
    ("no recipient", 400, re.escape("The request is invalid: see `errors`.")),
]


@pytest.mark.parametrize(("tamper", "status", "detail"), REFUSED, ids=[tamper for tamper, _, _ in REFUSED])
async def test_a_refused_delivery_stores_nothing(
    client: httpx.AsyncClient, tamper: str, status: int, detail: str
) -> None:
    key = new_key()
    url = await webhook_url(client, "mailgun", key)
    now = str(int(time.time()))
    body = {
        "token": resigned(key, now, token="u" * 50),
        "timestamp": resigned(key, now, timestamp=str(int(now) - 1)),
        "other key": resigned(new_key(), now),
        "stale": resigned(key, str(int(now) - 36_000)),
        "no signature": json.dumps({"event-data": json.loads(resigned(key, now))["event-data"]}).encode(),
        "no recipient": resigned(key, now).replace(b'"recipient": "recipient@sample.mailgun.com"', b'"x": 1'),
    }[tamper]

    async with httpx.AsyncClient() as mailgun:
        response = await mailgun.post(url, content=body)

    answer = response.json()
    assert re.fullmatch(detail, answer["detail"]), answer
    errors = {"errors": [{"field": "body", "message": NO_RECIPIENT}]} if status == 400 else {}
    assert (response.status_code, answer) == (
        status,
        problem(status, response.reason_phrase, answer["detail"], **errors),
    )
    assert (
        await report_for(client, "recipient@sample.mailgun.com", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z") == []
    )
    assert (await client.get("/api/campaigns")).json()["items"] == []


async def test_a_signature_seen_before_is_refused_with_another_body_and_taken_with_the_same(
    client: httpx.AsyncClient,
) -> None:
    """Mailgun's signature leaves the body out: once seen, it may carry no other events."""
    key = new_key()
    url = await webhook_url(client, "mailgun", key)
    genuine = signed_body("delivered.json", key, time.time())
    forged = json.loads(genuine)
    forged["event-data"].update(id="forged-event", recipient="victim@example.com")

    async with httpx.AsyncClient() as mailgun:
        first = await mailgun.post(url, content=genuine)
        replayed = await mailgun.post(url, content=json.dumps(forged).encode())
        retried = await mailgun.post(url, content=genuine)
        # The same delivery written out anew (spacing, key order): a retry all the same.
        rewritten = await mailgun.post(url, content=json.dumps(json.loads(genuine), indent=2, sort_keys=True).encode())

    assert (first.status_code, first.json()) == (200, result(ingested=1))
    assert (replayed.status_code, replayed.json()) == (
        401,
        problem(401, "Unauthorized", "This signature came before with another body: a replay. Nothing was stored."),
    )
    assert (retried.status_code, retried.json()) == (200, result(duplicates=1))
    assert (rewritten.status_code, rewritten.json()) == (200, result(duplicates=1))
    assert await report_for(client, "victim@example.com", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z") == []


@pytest.fixture(scope="module")
def three_signatures_api(database_url: str, redis_url: str, logs: Path) -> Iterator[str]:
    """An API keeping 3 Mailgun signatures an account against replays."""
    process, url = start_api(service_env(database_url, redis_url, webhook_signatures_kept=3), logs, "three-signatures")
    yield url
    process.stop()


def delivered_to(recipient: str, key: str, signed_at: float, token: str) -> bytes:
    """delivered.json to `recipient` (an event of its own), signed with `key` at `signed_at` with `token`."""
    body = json.loads(signed_body("delivered.json", key, signed_at, token))
    body["event-data"].update(id=f"event-for-{recipient}", recipient=recipient)
    return json.dumps(body).encode()


async def test_past_the_signatures_an_account_keeps_an_older_one_is_refused_and_no_replay_gets_through(
    three_signatures_api: str, account: ApiAccount, db: Database, redis_url: str
) -> None:
    key, now = new_key(), time.time()
    signed = {name: (now - age, secrets.token_hex(25)) for name, age in [("t0", 300), ("t1", 200), ("t2", 100)]}

    def delivery(name: str, recipient: str) -> bytes:
        signed_at, token = signed[name]
        return delivered_to(recipient, key, signed_at, token)

    async with httpx.AsyncClient(base_url=three_signatures_api, headers=account.headers) as client:
        url = await webhook_url(client, "mailgun", key)
        answers = {}
        for name in ("t0", "t1", "t2"):  # three kept: the most this account may keep
            answers[name] = await client.post(url, content=delivery(name, f"{name}@example.com"))
        answers["older"] = await client.post(url, content=delivered_to("older@example.com", key, now - 400, "o" * 50))
        answers["as old"] = await client.post(url, content=delivered_to("as-old@example.com", key, now - 300, "a" * 50))
        # Newer than every one kept: kept, and t0, the oldest, is forgotten...
        signed["t3"] = (now - 50, secrets.token_hex(25))
        answers["t3"] = await client.post(url, content=delivery("t3", "t3@example.com"))
        # ...so its replay, forgotten, is refused as too old; those kept, as replays; retries are taken.
        answers["t0 replayed"] = await client.post(url, content=delivery("t0", "victim@example.com"))
        answers["t2 replayed"] = await client.post(url, content=delivery("t2", "victim@example.com"))
        answers["t3 replayed"] = await client.post(url, content=delivery("t3", "victim@example.com"))
        answers["t2 retried"] = await client.post(url, content=delivery("t2", "t2@example.com"))
        answers["t3 retried"] = await client.post(url, content=delivery("t3", "t3@example.com"))

    too_old = problem(
        401,
        "Unauthorized",
        "This signature is no newer than the oldest of the 3 this account keeps against replays, so it might "
        "be one. Nothing was stored.",
    )
    replay = problem(401, "Unauthorized", "This signature came before with another body: a replay. Nothing was stored.")
    assert {name: (response.status_code, response.json()) for name, response in answers.items()} == {
        "t0": (200, result(ingested=1)),
        "t1": (200, result(ingested=1)),
        "t2": (200, result(ingested=1)),
        "older": (401, too_old),
        "as old": (401, too_old),
        "t3": (200, result(ingested=1)),
        "t0 replayed": (401, too_old),
        "t2 replayed": (401, replay),
        "t3 replayed": (401, replay),
        "t2 retried": (200, result(duplicates=1)),
        "t3 retried": (200, result(duplicates=1)),
    }
    assert await stored(db, account.id) == (4, 1)
    redis = Redis.from_url(redis_url)
    try:
        kept = await redis.zrange(f"contactreports:webhook-signatures:{account.id}:mailgun:at", 0, -1)
        assert (len(kept), await redis.hlen(f"contactreports:webhook-signatures:{account.id}:mailgun:said")) == (3, 3)
    finally:
        await redis.aclose()
