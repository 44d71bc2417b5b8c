"""Hostile input: every odd string a client can send gets a 4xx naming the field, and stores nothing.

JSON can carry what UTF-8 cannot (`\\ud800`, a lone surrogate) and what SQLite and CSV treat
specially (NUL); strings can be a megabyte long. None of it may reach the database half-checked.
"""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import ApiAccount
from contactreports.store.database import Database

EVENT = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T09:30:00Z"}
SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2026-02-01T00:00:00Z",
}
CAMPAIGN = {"name": "Spring sale", "channel": "email", "archived": False}
MEGABYTE = "x" * 1_000_000

NOT_JSON = "not valid JSON: "  # msgspec then says what: a lone surrogate, an unpaired escape...
CONTROL = "control characters (NUL, ESC, tab, newline...) are not allowed"
CONTROL_IN_TEXT = "control characters other than tab and line breaks are not allowed"

# (what is sent, its field, a hostile value, the field the error names, how its message starts)
CASES = [
    ("event", "email", "ann\ud800@example.com", "body", NOT_JSON),
    ("event", "id", "e\ud800", "body", NOT_JSON),
    ("event", "details", {"url": "https://example.com/\udfff"}, "body", NOT_JSON),
    ("event", "details", {"\ud83d": 1}, "body", NOT_JSON),
    ("event", "email", "ann@example.com\x00", "[1].email", "not an email address"),
    ("event", "id", "e\x00", "[1].id", CONTROL),
    ("event", "campaign_id", "spring\x1b[31m", "[1].campaign_id", CONTROL),
    ("event", "email", MEGABYTE + "@example.com", "[1].email", "Expected `str` of length <= 320"),
    ("event", "id", MEGABYTE, "[1].id", "Expected `str` of length <= 200"),
    ("event", "campaign_id", MEGABYTE, "[1].campaign_id", "Expected `str` of length <= 200"),
    ("event", "details", {"blob": MEGABYTE}, "[1].details", "at most 16,384 bytes of JSON"),
    ("report", "email", "ann\ud800@example.com", "body", NOT_JSON),
    ("report", "email", "ann@example.com\x00", "email", "not an email address"),
    ("report", "email", MEGABYTE + "@example.com", "email", "Expected `str` of length <= 320"),
    ("report", "categories", ["email"] * 100_000, "categories", "Expected `array` of length <= "),
    ("campaign", "name", "Spring\ud800", "body", NOT_JSON),
    ("campaign", "name", "Spring\x00sale", "name", CONTROL_IN_TEXT),
    ("campaign", "name", "\x1b]8;;https://evil.example\x07Spring", "name", CONTROL_IN_TEXT),
    # Campaign ids travel in the path, percent-encoded.
    ("campaign", "campaign_id", "spring%1B%5B2J", "campaign_id", CONTROL),
    ("campaign", "campaign_id", "spring%C2%9B", "campaign_id", CONTROL),
    ("campaign", "campaign_id", "spring%0A", "campaign_id", CONTROL),
    ("campaign", "name", MEGABYTE, "name", "Expected `str` of length <= 200"),
]


async def send(client: httpx.AsyncClient, where: str, field: str, value: object) -> httpx.Response:
    method, path, body = {
        "event": ("POST", "/api/events", [EVENT, {**EVENT, field: value}]),
        "report": ("POST", "/api/reports", {**SEARCH, field: value}),
        "campaign": ("PUT", "/api/campaigns/spring", {**CAMPAIGN, field: value}),
    }[where]
    if field == "campaign_id" and where == "campaign":
        path, body = f"/api/campaigns/{value}", CAMPAIGN
    # json.dumps escapes a lone surrogate as \ud800: valid JSON text, though not a character.
    content = json.dumps(body).encode()
    return await client.request(method, path, content=content, headers={"Content-Type": "application/json"})


async def stored(db: Database, account: ApiAccount) -> tuple[int, int, int]:
    row = await db.fetch_one(
        "SELECT (SELECT count(*) FROM events WHERE account_id = :a) AS events,"
        " (SELECT count(*) FROM reports WHERE account_id = :a) AS reports,"
        " (SELECT count(*) FROM campaigns WHERE account_id = :a) AS campaigns",
        {"a": account.id},
    )
    assert row is not None
    return row["events"], row["reports"], row["campaigns"]


@pytest.mark.parametrize(("where", "field", "value", "named", "message"), CASES, ids=lambda v: repr(v)[:30])
async def test_hostile_values_are_400_naming_the_field_and_store_nothing(
    client: httpx.AsyncClient,
    db: Database,
    account: ApiAccount,
    where: str,
    field: str,
    value: object,
    named: str,
    message: str,
) -> None:
    response = await send(client, where, field, value)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["detail"] == "The request is invalid: see `errors`."
    assert [(error["field"], error["message"].startswith(message)) for error in problem["errors"]] == [(named, True)]
    assert await stored(db, account) == (0, 0, 0)
