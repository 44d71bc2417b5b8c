"""A report's rows are exactly the account's matching events (API.md, "Reports"), checked against an oracle."""

from __future__ import annotations

import httpx
import pytest

from conftest import ApiAccount
from helpers import all_rows, create_report, ingest, oracle, put_campaign, wait_done

START, END = "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"
CAMPAIGNS = {"spring": {"name": "Spring sale", "archived": False}, "old": {"name": "Old newsletter", "archived": True}}
EVENTS = [
    # Boundaries: start is inclusive, end exclusive.
    {
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": "2026-02-28T23:59:59.999Z",
        "campaign_id": "spring",
    },
    {
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": "2026-03-01T00:00:00Z",
        "campaign_id": "spring",
    },
    {
        "email": "ann@example.com",
        "action": "email.clicked",
        "occurred_at": "2026-03-31T23:59:59.999Z",
        "campaign_id": "spring",
        "details": {"url": "https://shop.example.com/spring"},
    },
    {
        "email": "ann@example.com",
        "action": "email.clicked",
        "occurred_at": "2026-04-01T00:00:00Z",
        "campaign_id": "spring",
    },
    # The email is matched after trimming and lower-casing, and a time offset is honoured.
    {
        "email": "  ANN@Example.COM ",
        "action": "email.opened",
        "occurred_at": "2026-03-02T12:00:00+02:00",
        "campaign_id": "spring",
    },
    # Unicode: é written as e + combining accent is the same address as é (NFC).
    {"email": "jose\u0301@example.com", "action": "email.opened", "occurred_at": "2026-03-02T13:00:00Z"},
    # No campaign: always included.
    {
        "email": "ann@example.com",
        "action": "campaign.profile_updated",
        "occurred_at": "2026-03-03T08:00:00Z",
        "details": {"field": "city", "from": "Oslo", "to": "Bergen"},
    },
    # An archived campaign: only with include_archived.
    {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-04T08:00:00Z", "campaign_id": "old"},
    {
        "email": "ann@example.com",
        "action": "email.bounced",
        "occurred_at": "2026-03-04T09:00:00Z",
        "campaign_id": "old",
        "details": {"bounce_type": "hard"},
    },
    # Ties in time keep ingestion order.
    {
        "email": "ann@example.com",
        "action": "email.clicked",
        "occurred_at": "2026-03-05T10:00:00Z",
        "campaign_id": "spring",
        "details": {"n": 1},
    },
    {
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": "2026-03-05T10:00:00Z",
        "campaign_id": "spring",
        "details": {"n": 2},
    },
    {
        "email": "ann@example.com",
        "action": "email.clicked",
        "occurred_at": "2026-03-05T10:00:00Z",
        "campaign_id": "spring",
        "details": {"n": 3},
    },
    # An action not searched for, another contact, a duplicate id.
    {"email": "ann@example.com", "action": "sms.sent", "occurred_at": "2026-03-06T08:00:00Z"},
    {
        "email": "bob@example.com",
        "action": "email.opened",
        "occurred_at": "2026-03-06T08:00:00Z",
        "campaign_id": "spring",
    },
    {
        "id": "evt-1",
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": "2026-03-07T08:00:00Z",
        "details": {"copy": 1},
    },
    {
        "id": "evt-1",
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": "2026-03-07T09:00:00Z",
        "details": {"copy": 2},
    },
]
SEARCH = {
    "email": "Ann@Example.com",
    "actions": ["email.opened", "email.clicked", "email.bounced"],
    "categories": ["campaign"],
    "start": START,
    "end": END,
}
SEARCHED = [
    "email.opened",
    "email.clicked",
    "email.bounced",
    "campaign.sent",
    "campaign.profile_updated",
    "campaign.form_submitted",
    "campaign.subscribed",
    "campaign.optin_requested",
    "campaign.optin_confirmed",
]


@pytest.fixture
async def ann(client: httpx.AsyncClient, new_account, api: str) -> httpx.AsyncClient:
    """An account holding EVENTS, beside another account with the same contact's events."""
    for campaign_id, campaign in CAMPAIGNS.items():
        await put_campaign(client, campaign_id, campaign["name"], archived=campaign["archived"])
    assert await ingest(client, EVENTS) == {"ingested": len(EVENTS) - 1, "duplicates": 1}
    other: ApiAccount = await new_account()
    async with httpx.AsyncClient(base_url=api, headers=other.headers) as other_client:
        await put_campaign(other_client, "spring", "Someone else's campaign")
        await ingest(
            other_client, [{**event, "campaign_id": "spring" if event.get("campaign_id") else None} for event in EVENTS]
        )
    return client


async def report_rows(client: httpx.AsyncClient, **search) -> tuple[dict, list[dict]]:
    report = await wait_done(client, (await create_report(client, **search))["id"])
    assert report["status"] == "done", report
    return report, await all_rows(client, report["id"])


async def test_rows_are_exactly_the_matching_events(ann: httpx.AsyncClient) -> None:
    report, rows = await report_rows(ann, **SEARCH)

    expected = oracle(EVENTS, CAMPAIGNS, email="ann@example.com", actions=SEARCHED, start=START, end=END)
    assert rows == expected
    assert [row["details"].get("n") for row in rows if row["occurred_at"].startswith("2026-03-05")] == [1, 2, 3]
    assert report["row_count"] == len(expected) == 8
    assert report["progress"] == {"scanned": 8, "total": 8, "percent": 100.0}
    assert report["email"] == "ann@example.com"
    assert report["actions"] == sorted(SEARCHED)
    assert report["attempts"] == 1


async def test_archived_campaigns_are_included_when_asked(ann: httpx.AsyncClient) -> None:
    _, rows = await report_rows(ann, **SEARCH, include_archived=True)

    expected = oracle(
        EVENTS, CAMPAIGNS, email="ann@example.com", actions=SEARCHED, start=START, end=END, include_archived=True
    )
    assert rows == expected
    assert [row["action"] for row in rows if row["campaign"] and row["campaign"]["archived"]] == [
        "email.opened",
        "email.bounced",
    ]


async def test_rows_filter_by_action_and_page_with_cursors(ann: httpx.AsyncClient) -> None:
    report, rows = await report_rows(ann, **SEARCH)

    assert await all_rows(ann, report["id"], limit=1) == rows
    clicked = await all_rows(ann, report["id"], limit=2, action="email.clicked")
    assert clicked == [row for row in rows if row["action"] == "email.clicked"]
    assert len(clicked) == 3
    both = await all_rows(ann, report["id"], limit=2, action=["email.clicked", "campaign.profile_updated"])
    assert both == [row for row in rows if row["action"] in ("email.clicked", "campaign.profile_updated")]


async def test_archiving_a_campaign_later_moves_its_events(ann: httpx.AsyncClient) -> None:
    await put_campaign(ann, "spring", "Spring sale", archived=True)
    campaigns = {**CAMPAIGNS, "spring": {"name": "Spring sale", "archived": True}}

    _, without = await report_rows(ann, **SEARCH)
    assert without == oracle(EVENTS, campaigns, email="ann@example.com", actions=SEARCHED, start=START, end=END)
    assert [row["action"] for row in without] == ["campaign.profile_updated", "email.opened"]  # no campaign

    await put_campaign(ann, "spring", "Spring sale", archived=False)
    _, again = await report_rows(ann, **SEARCH)
    assert again == oracle(EVENTS, CAMPAIGNS, email="ann@example.com", actions=SEARCHED, start=START, end=END)


async def test_a_contact_without_events_gives_an_empty_done_report(ann: httpx.AsyncClient) -> None:
    report, rows = await report_rows(ann, **{**SEARCH, "email": "nobody@example.com"})

    assert rows == []
    assert report["row_count"] == 0
    assert report["progress"] == {"scanned": 0, "total": 0, "percent": 100.0}


async def test_an_email_matches_whichever_way_its_accents_were_written(ann: httpx.AsyncClient) -> None:
    report, rows = await report_rows(ann, **{**SEARCH, "email": "JOS\u00c9@example.com"})

    assert report["email"] == "jos\u00e9@example.com"
    assert [(row["occurred_at"], row["action"]) for row in rows] == [("2026-03-02T13:00:00.000Z", "email.opened")]
