"""Event ingestion: JSON or NDJSON, all or nothing, duplicates skipped by id."""

from __future__ import annotations

import json

import httpx
import pytest

from contactreports.store.database import Database
from helpers import put_campaign

EVENT = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T09:30:00Z"}


async def stored_events(db: Database, account_id: int) -> int:
    return await db.fetch_value(
        "SELECT (SELECT count(*) FROM events WHERE account_id = :account_id)"
        " + (SELECT count(*) FROM archived_events WHERE account_id = :account_id)",
        {"account_id": account_id},
    )


async def test_a_json_array_is_ingested_and_duplicates_are_counted(client: httpx.AsyncClient, db, account) -> None:
    first = await client.post(
        "/api/events", json=[{**EVENT, "id": "a"}, {**EVENT, "id": "b"}, {**EVENT, "id": "a"}, EVENT]
    )
    assert first.status_code == 200
    assert first.json() == {"ingested": 3, "duplicates": 1}

    again = await client.post("/api/events", json=[{**EVENT, "id": "b"}, {**EVENT, "id": "c"}])
    assert again.json() == {"ingested": 1, "duplicates": 1}
    assert await stored_events(db, account.id) == 4


async def test_ndjson_is_ingested(client: httpx.AsyncClient, db, account) -> None:
    body = "\n".join(json.dumps({**EVENT, "id": f"n{n}"}) for n in range(3)) + "\n\n"

    response = await client.post("/api/events", content=body, headers={"Content-Type": "application/x-ndjson"})

    assert response.status_code == 200, response.text
    assert response.json() == {"ingested": 3, "duplicates": 0}
    assert await stored_events(db, account.id) == 3


async def test_event_ids_are_per_account(client: httpx.AsyncClient, api: str, new_account) -> None:
    other = await new_account()
    assert (await client.post("/api/events", json=[{**EVENT, "id": "same"}])).json()["ingested"] == 1
    async with httpx.AsyncClient(base_url=api, headers=other.headers) as other_client:
        assert (await other_client.post("/api/events", json=[{**EVENT, "id": "same"}])).json()["ingested"] == 1


@pytest.mark.parametrize(
    ("event", "field", "message"),
    [
        ({**EVENT, "email": "not-an-email"}, "[1].email", "not an email address"),
        ({**EVENT, "email": "ann@@example.com"}, "[1].email", "not an email address"),
        ({**EVENT, "email": "ann\u202e@example.com"}, "[1].email", "not an email address"),
        ({**EVENT, "email": "ann\u200b@example.com"}, "[1].email", "not an email address"),
        ({**EVENT, "email": "ann\x00@example.com"}, "[1].email", "not an email address"),
        ({**EVENT, "details": {"blob": "x" * 16_384}}, "[1].details", "at most 16,384 bytes of JSON, got 16,395"),
        (
            {**EVENT, "action": "email.teleported"},
            "[1].action",
            "unknown action 'email.teleported'; see GET /api/actions",
        ),
        (
            {**EVENT, "occurred_at": "2026-03-01T09:30:00"},
            "[1].occurred_at",
            "Expected `datetime` with a timezone component",
        ),
        ({**EVENT, "occurred_at": "yesterday"}, "[1].occurred_at", "Invalid RFC3339 encoded datetime"),
        ({**EVENT, "campaign_id": "nope"}, "[1].campaign_id", "unknown campaign 'nope'"),
        ({**EVENT, "details": ["not", "an", "object"]}, "[1].details", "Expected `object | null`, got `array`"),
        ({**EVENT, "colour": "red"}, "[1].colour", "Object contains unknown field `colour`"),
        (
            {"email": "ann@example.com", "action": "email.opened"},
            "[1].occurred_at",
            "Object missing required field `occurred_at`",
        ),
    ],
)
async def test_one_invalid_event_rejects_the_batch_naming_it(
    client: httpx.AsyncClient, db, account, event: dict, field: str, message: str
) -> None:
    response = await client.post("/api/events", json=[EVENT, event, EVENT])

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["title"]) == (400, "Bad Request")
    assert body["errors"] == [{"field": field, "message": message}]
    assert await stored_events(db, account.id) == 0


async def test_a_bad_ndjson_line_is_named(client: httpx.AsyncClient, db, account) -> None:
    body = json.dumps(EVENT) + "\n{not json\n"

    response = await client.post("/api/events", content=body, headers={"Content-Type": "application/x-ndjson"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "[1]"
    assert await stored_events(db, account.id) == 0


@pytest.mark.parametrize("body", [b"", b"{not json", b'{"email": "ann@example.com"}', b"[1, 2]", b"null"])
async def test_a_body_that_is_not_an_event_array_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/api/events", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_more_than_ten_thousand_events_is_400(client: httpx.AsyncClient, db, account) -> None:
    response = await client.post("/api/events", json=[EVENT] * 10_001)

    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "body", "message": "at most 10,000 events per request, got 10,001"}]
    assert await stored_events(db, account.id) == 0


async def test_events_of_an_archived_campaign_are_stored_apart(client: httpx.AsyncClient, db, account) -> None:
    await put_campaign(client, "old", "Old", archived=True)

    assert (await client.post("/api/events", json=[{**EVENT, "campaign_id": "old"}, EVENT])).status_code == 200

    of_account = {"account_id": account.id}
    hot = await db.fetch_value("SELECT count(*) FROM events WHERE account_id = :account_id", of_account)
    cold = await db.fetch_value("SELECT count(*) FROM archived_events WHERE account_id = :account_id", of_account)
    assert (hot, cold) == (1, 1)
