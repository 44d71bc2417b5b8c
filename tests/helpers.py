"""Test helpers: talking to the API, and an oracle computed independently of the product."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from conftest import wait_until
from contactreports.ingest import EventIn
from contactreports.models import Report
from contactreports.store.database import Database
from contactreports.store.reports import get_report
from contactreports.webhooks.base import Parsed

SESSION = "contactreports_session"  # the web page's session cookie
CATEGORIES = ["email", "campaign", "sms", "automation"]  # the API's categories (GET /api/actions)
ALL_EMAIL = [
    "email.sent",
    "email.delivered",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.unsubscribed",
    "email.spam_reported",
    "email.forwarded",
]


async def put_campaign(
    client: httpx.AsyncClient, campaign_id: str, name: str, *, archived: bool = False, channel: str = "email"
) -> None:
    response = await client.put(
        f"/api/campaigns/{campaign_id}", json={"name": name, "channel": channel, "archived": archived}
    )
    assert response.status_code in (200, 201), response.text


async def ingest(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, int]:
    response = await client.post("/api/events", json=events)
    assert response.status_code == 200, response.text
    return response.json()


async def create_report(client: httpx.AsyncClient, **search: Any) -> dict[str, Any]:
    response = await client.post("/api/reports", json=search)
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/reports/{response.json()['id']}"
    return response.json()


async def wait_done(client: httpx.AsyncClient, report_id: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        report = (await client.get(f"/api/reports/{report_id}")).json()
        return report if report["status"] in ("done", "failed") else None

    return await wait_until(finished)


async def all_rows(client: httpx.AsyncClient, report_id: str, limit: int = 500, **params: Any) -> list[dict]:
    rows, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(f"/api/reports/{report_id}/rows", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        rows += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def show_ts(moment: datetime) -> str:
    """The contract's response format, written out independently of the product's code."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc:%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def same_address(a: str, b: str) -> bool:
    """The contract: trimmed, lower-cased; and one Unicode form (NFC) for accented letters."""
    return unicodedata.normalize("NFC", a).strip().lower() == unicodedata.normalize("NFC", b).strip().lower()


def oracle(
    events: list[dict],
    campaigns: dict[str, dict],
    *,
    email: str,
    actions: list[str],
    start: str,
    end: str,
    include_archived: bool = False,
) -> list[dict]:
    """The rows a report must have, straight from the contract's definition.

    `events` in ingestion order; `campaigns` maps id -> {"name", "archived"} as they are now.
    """
    seen_ids, matching = set(), []
    for position, event in enumerate(events):
        if event.get("id") is not None:
            if event["id"] in seen_ids:
                continue
            seen_ids.add(event["id"])
        moment = parse_ts(event["occurred_at"])
        campaign = campaigns.get(event.get("campaign_id") or "")
        if (
            same_address(event["email"], email)
            and event["action"] in actions
            and parse_ts(start) <= moment < parse_ts(end)
            and (campaign is None or not campaign["archived"] or include_archived)
        ):
            matching.append((moment, position, event, campaign))
    matching.sort(key=lambda item: (item[0], item[1]))
    return [
        {
            "occurred_at": show_ts(moment),
            "action": event["action"],
            "category": event["action"].split(".")[0],
            "campaign": (
                {"id": event["campaign_id"], "name": campaign["name"], "archived": campaign["archived"]}
                if campaign
                else None
            ),
            "details": event.get("details") or {},
        }
        for moment, _, event, campaign in matching
    ]


async def webhook_url(client: httpx.AsyncClient, provider: str, secret: str) -> str:
    """The account's webhook URL for `provider`, with `secret` set for it. Rotates the token, so a
    URL from an earlier call stops working: call it once per test and account."""
    token = await client.post("/api/webhooks/token")
    assert token.status_code == 201, token.text
    response = await client.put(f"/api/webhooks/{provider}", json={"secret": secret})
    assert response.status_code == 200, response.text
    return token.json()["urls"][provider]


async def report_for(client: httpx.AsyncClient, email: str, start: str, end: str) -> list[dict]:
    """The rows of a done report on every action of `email` from `start` to `end` (at most 3 years)."""
    report = await create_report(client, email=email, categories=CATEGORIES, start=start, end=end)
    done = await wait_done(client, report["id"])
    assert done["status"] == "done", done
    return await all_rows(client, report["id"])


def result(ingested: int = 0, duplicates: int = 0, ignored: dict | None = None, rejected: list | None = None) -> dict:
    """A webhook delivery's answer (`POST /webhooks/{provider}/{token}`)."""
    return {"ingested": ingested, "duplicates": duplicates, "ignored": ignored or {}, "rejected": rejected or []}


def too_many_events(count: int) -> dict:
    """The answer to a request of `count` events, more than one may carry (10,000), whichever way
    they came: `POST /api/events` or a webhook delivery."""
    return {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "The request is invalid: see `errors`.",
        "errors": [{"field": "body", "message": f"at most 10,000 events per request, got {count:,}"}],
    }


async def fetched(db: Database, sql: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of `sql` (named parameters `params`), each as {column: value}: alike from every backend."""
    return [dict(row) for row in await db.fetch(sql, params)]


async def stored_report(db: Database, report_id: str) -> Report:
    """The report as the store has it now, found by `id` alone: in tests only, as the service
    always knows the account."""
    account_id = await db.fetch_value("SELECT account_id FROM reports WHERE id = :id", {"id": report_id})
    return await get_report(db, account_id, report_id)


async def stored(db: Database, account_id: int) -> tuple[int, int]:
    """(events, campaigns) the account has, archived events included."""
    row = await db.fetch_one(
        "SELECT (SELECT count(*) FROM events WHERE account_id = :account_id) + (SELECT count(*) FROM archived_events"
        " WHERE account_id = :account_id) AS events, (SELECT count(*) FROM campaigns WHERE account_id = :account_id)"
        " AS campaigns",
        {"account_id": account_id},
    )
    assert row is not None
    return row["events"], row["campaigns"]


def in_order(events: list[EventIn], campaigns: dict[str, str] | None = None) -> Parsed:
    """What an adapter parses from a delivery whose every event it keeps: positions 0, 1, ..."""
    return Parsed(events=events, positions=list(range(len(events))), campaigns=campaigns or {})


@asynccontextmanager
async def signed_in(web: str, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a web page session, as a browser keeps it; by hand, as the cookie is Secure and this is
    plain HTTP."""

    async def keep_session(response: httpx.Response) -> None:
        if SESSION in response.cookies:
            client.headers["Cookie"] = f"{SESSION}={response.cookies[SESSION]}"

    async with httpx.AsyncClient(base_url=web, event_hooks={"response": [keep_session]}, timeout=30) as client:
        assert (await client.post("/sign-in", data={"api_key": api_key})).status_code == 303
        yield client
