"""Bad requests get RFC 9457 problem bodies (never a 500); isolation between accounts is in test_isolation.py."""

from __future__ import annotations

import httpx
import pytest

from contactreports.store.database import Database
from helpers import create_report, ingest, wait_done

SEARCH = {
    "email": "ann@example.com",
    "actions": ["email.opened"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    return body


def one_invalid_field(field: str, message: str) -> dict:
    """The problem body of a 400 naming one field."""
    return {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "The request is invalid: see `errors`.",
        "errors": [{"field": field, "message": message}],
    }


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/actions"),
        ("GET", "/api/reports"),
        ("POST", "/api/reports"),
        ("GET", "/api/reports/x"),
        ("DELETE", "/api/reports/x"),
        ("POST", "/api/events"),
        ("GET", "/api/campaigns"),
        ("PUT", "/api/campaigns/x"),
    ],
)
async def test_missing_or_unknown_api_key_is_401(api: str, headers: dict, method: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=api) as anonymous:
        response = await anonymous.request(method, path, headers=headers, json={})

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"email": "nobody"}, [{"field": "email", "message": "not an email address"}]),
        (
            {"actions": ["email.opened", "email.flown"]},
            [{"field": "actions[1]", "message": "unknown action 'email.flown'; see GET /api/actions"}],
        ),
        (
            {"actions": [], "categories": ["letters"]},
            [{"field": "categories[0]", "message": "unknown category 'letters'; see GET /api/actions"}],
        ),
        ({"actions": []}, [{"field": "actions", "message": "name at least one action or category"}]),
        ({"end": "2026-01-01T00:00:00Z"}, [{"field": "end", "message": "must be after start (to the millisecond)"}]),
        (
            {"start": "2026-01-01T00:00:00.0001Z", "end": "2026-01-01T00:00:00.0009Z"},
            [{"field": "end", "message": "must be after start (to the millisecond)"}],
        ),
        ({"start": "2020-01-01T00:00:00Z"}, [{"field": "end", "message": "the window may span at most 1098 days"}]),
        (
            {"start": "2026-01-01T00:00:00"},
            [{"field": "start", "message": "Expected `datetime` with a timezone component"}],
        ),
        ({"include_archived": "yes"}, [{"field": "include_archived", "message": "Expected `bool`, got `str`"}]),
        ({"surprise": 1}, [{"field": "surprise", "message": "Object contains unknown field `surprise`"}]),
    ],
)
async def test_an_invalid_search_is_400_naming_the_field_and_stores_nothing(
    client: httpx.AsyncClient, db: Database, account, change: dict, errors: list
) -> None:
    body = assert_problem(await client.post("/api/reports", json={**SEARCH, **change}), 400)

    assert body["errors"] == errors
    stored = await db.fetch_value(
        "SELECT count(*) FROM reports WHERE account_id = :account_id", {"account_id": account.id}
    )
    assert stored == 0


@pytest.mark.parametrize("body", [b"{not json", b"[]", b"", b'"text"'])
async def test_a_malformed_body_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    assert_problem(await client.post("/api/reports", content=body, headers={"Content-Type": "application/json"}), 400)


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 501},
        {"limit": "ten"},
        {"cursor": "abc"},
        {"cursor": "WzEwMF0.AAAAAAAAAAAAAAAAAAAAAA"},
        {"cursor": "!!.!!"},
    ],
)
async def test_bad_limits_and_tampered_cursors_are_400(client: httpx.AsyncClient, query: dict) -> None:
    body = assert_problem(await client.get("/api/reports", params=query), 400)
    assert body["errors"][0]["field"] == next(iter(query))


async def test_a_cursor_only_works_for_the_account_and_list_that_gave_it(
    client: httpx.AsyncClient, api: str, new_account
) -> None:
    for campaign_id in ("a", "b"):
        await client.put(f"/api/campaigns/{campaign_id}", json={"name": campaign_id, "channel": "email"})
    cursor = (await client.get("/api/campaigns", params={"limit": 1})).json()["next_cursor"]
    assert cursor is not None

    assert_problem(await client.get("/api/reports", params={"cursor": cursor}), 400)
    intruder = await new_account()
    async with httpx.AsyncClient(base_url=api, headers=intruder.headers) as other:
        assert_problem(await other.get("/api/campaigns", params={"cursor": cursor}), 400)


async def test_a_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    too_big = b"[" + b" " * (16 * 1024 * 1024) + b"]"
    body = assert_problem(
        await client.post("/api/events", content=too_big, headers={"Content-Type": "application/json"}), 413
    )
    assert body["detail"] == "The request body is larger than this server accepts."


async def test_unknown_paths_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/nothing-here"), 404)
    assert_problem(await client.patch("/api/reports"), 405)
    rows = await client.get("/api/reports/unknown/rows", params={"action": "email.nope"})
    assert assert_problem(rows, 400)["errors"] == [{"field": "action", "message": "unknown action 'email.nope'"}]


OUT_OF_RANGE = "must be from 1900-01-01T00:00:00Z up to 9999-01-01T00:00:00Z"
EVENT = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T09:30:00Z"}


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/api/reports", "application/json"),
        ("PUT", "/api/campaigns/x", "application/json"),
        ("POST", "/api/events", "application/json"),
        ("POST", "/api/events", "application/x-ndjson"),
    ],
)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"email": "\xff\xfe"}', "not valid UTF-8"),
        (b'{"details": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}", "JSON nested too deeply"),
    ],
)
async def test_unreadable_bodies_are_400(
    client: httpx.AsyncClient,
    db: Database,
    account,
    method: str,
    path: str,
    content_type: str,
    body: bytes,
    message: str,
) -> None:
    if path == "/api/events" and content_type == "application/json":
        body = b"[" + body + b"]"

    response = await client.request(method, path, content=body, headers={"Content-Type": content_type})

    problem = assert_problem(response, 400)
    assert [error["message"] for error in problem["errors"]] == [message]
    stored = await db.fetch_value(
        "SELECT (SELECT count(*) FROM events WHERE account_id = :account_id)"
        " + (SELECT count(*) FROM campaigns WHERE account_id = :account_id)"
        " + (SELECT count(*) FROM reports WHERE account_id = :account_id)",
        {"account_id": account.id},
    )
    assert stored == 0


CAMPAIGN = {"name": "Spring", "channel": "email"}


@pytest.mark.parametrize(
    ("method", "path", "body", "error"),
    [
        ("PUT", "/api/campaigns/c", {**CAMPAIGN, "archived": 0}, ("archived", "Expected `bool`, got `int`")),
        ("PUT", "/api/campaigns/c", {**CAMPAIGN, "archived": "true"}, ("archived", "Expected `bool`, got `str`")),
        (
            "PUT",
            "/api/campaigns/c",
            {**CAMPAIGN, "sent_at": 1767225600},
            ("sent_at", "Expected `datetime | null`, got `int`"),
        ),
        (
            "PUT",
            "/api/campaigns/c",
            {**CAMPAIGN, "sent_at": "1767225600"},
            ("sent_at", "Invalid RFC3339 encoded datetime"),
        ),
        ("POST", "/api/reports", {**SEARCH, "include_archived": 1}, ("include_archived", "Expected `bool`, got `int`")),
        ("POST", "/api/reports", {**SEARCH, "start": 1767225600}, ("start", "Expected `datetime`, got `int`")),
        ("POST", "/api/reports", {**SEARCH, "end": "1798761600.5"}, ("end", "Invalid RFC3339 encoded datetime")),
    ],
)
async def test_a_body_is_not_coerced_a_number_is_neither_a_boolean_nor_a_timestamp(
    client: httpx.AsyncClient, db: Database, account, method: str, path: str, body: dict, error: tuple
) -> None:
    # Found by schemathesis: Litestar's lenient conversion took 0 or "true" for a boolean and a number
    # of seconds for a timestamp, though the OpenAPI document (and API.md: RFC 3339 with an offset) says not.
    response = await client.request(method, path, json=body)

    assert_problem(response, 400)
    assert response.json() == one_invalid_field(*error)
    stored = await db.fetch_value(
        "SELECT (SELECT count(*) FROM campaigns WHERE account_id = :account_id)"
        " + (SELECT count(*) FROM reports WHERE account_id = :account_id)",
        {"account_id": account.id},
    )
    assert stored == 0


async def test_an_empty_body_is_400_saying_so(client: httpx.AsyncClient) -> None:
    for method, path in (("POST", "/api/reports"), ("PUT", "/api/campaigns/x"), ("POST", "/api/events")):
        problem = assert_problem(await client.request(method, path, content=b""), 400)
        assert problem["errors"] == [{"field": "body", "message": "a JSON body is required"}]


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+01:00", "1899-12-31T23:59:59.999Z", "9999-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"],
)
async def test_timestamps_outside_1900_to_9999_are_400_and_store_nothing(
    client: httpx.AsyncClient, db: Database, account, moment: str
) -> None:
    campaign = await client.put("/api/campaigns/old", json={"name": "Old", "channel": "email", "sent_at": moment})
    event = await client.post("/api/events", json=[EVENT, {**EVENT, "occurred_at": moment}])
    report = await client.post("/api/reports", json={**SEARCH, "start": moment, "end": "2026-01-01T00:00:00Z"})

    assert assert_problem(campaign, 400)["errors"] == [{"field": "sent_at", "message": OUT_OF_RANGE}]
    assert assert_problem(event, 400)["errors"] == [{"field": "[1].occurred_at", "message": OUT_OF_RANGE}]
    assert assert_problem(report, 400)["errors"] == [{"field": "start", "message": OUT_OF_RANGE}]
    assert (await client.get("/api/campaigns")).json()["items"] == []
    assert (await client.get("/api/reports")).json()["items"] == []
    stored = await db.fetch_value(
        "SELECT count(*) FROM events WHERE account_id = :account_id", {"account_id": account.id}
    )
    assert stored == 0


async def test_the_widest_accepted_timestamps_round_trip(client: httpx.AsyncClient) -> None:
    first, last = "1900-01-01T00:00:00.000Z", "9998-12-31T23:59:59.999Z"
    await ingest(client, [{**EVENT, "occurred_at": first}, {**EVENT, "occurred_at": last}])
    report = await wait_done(
        client, (await create_report(client, **{**SEARCH, "start": first, "end": "1901-01-01T00:00:00Z"}))["id"]
    )
    rows = (await client.get(f"/api/reports/{report['id']}/rows")).json()["items"]

    assert (report["start"], [row["occurred_at"] for row in rows]) == (first, [first])
    campaign = await client.put("/api/campaigns/late", json={"name": "Late", "channel": "sms", "sent_at": last})
    assert campaign.json()["sent_at"] == last


async def test_a_missing_query_parameter_is_named(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/api/reports/x/export"), 400)
    assert problem["errors"] == [{"field": "format", "message": "a required query parameter"}]


@pytest.mark.parametrize("path", ["/api/campaigns", "/api/keys", "/api/reports/{id}/rows"])
@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 501}, {"cursor": "WzEwMF0.AAAAAAAAAAAAAAAAAAAAAA"}])
async def test_every_list_checks_limit_and_cursor(client: httpx.AsyncClient, path: str, query: dict) -> None:
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])

    problem = assert_problem(await client.get(path.format(id=report["id"]), params=query), 400)

    assert problem["errors"][0]["field"] == next(iter(query))


@pytest.mark.parametrize(
    ("method", "path", "request_options", "error"),
    [
        (
            "GET",
            "/api/reports/x/export",
            {"params": {"format": "pdf"}},
            ("format", "'pdf' is not one of csv, ndjson, xlsx"),
        ),
        (
            "GET",
            "/api/reports",
            {"params": {"status": "finished"}},
            ("status", "'finished' is not one of done, failed, processing, queued"),
        ),
        (
            "PUT",
            "/api/campaigns/c",
            {"json": {"name": "C", "channel": "fax"}},
            ("channel", "'fax' is not one of automation, email, sms, whatsapp"),
        ),
        (
            "PUT",
            "/api/campaigns/c",
            {"json": {"name": "C", "channel": 3}},
            ("channel", "Expected `str`, got `int`"),
        ),
    ],
)
async def test_a_value_outside_an_enum_is_400_naming_the_allowed_ones(
    client: httpx.AsyncClient, method: str, path: str, request_options: dict, error: tuple[str, str]
) -> None:
    response = await client.request(method, path, **request_options)

    assert_problem(response, 400)
    assert response.json() == one_invalid_field(*error)
