"""Campaigns: create or replace, read, list with cursors."""

from __future__ import annotations

import httpx


async def test_put_creates_then_replaces(client: httpx.AsyncClient) -> None:
    body = {"name": "Spring sale", "channel": "email", "sent_at": "2026-03-01T10:30:00+01:00", "archived": False}

    created = await client.put("/api/campaigns/spring", json=body)
    replaced = await client.put("/api/campaigns/spring", json={**body, "name": "Spring sale (resent)", "sent_at": None})

    assert created.status_code == 201
    assert created.json() == {
        "id": "spring",
        "name": "Spring sale",
        "channel": "email",
        "sent_at": "2026-03-01T09:30:00.000Z",
        "archived": False,
    }
    assert replaced.status_code == 200
    assert (await client.get("/api/campaigns/spring")).json() == {
        "id": "spring",
        "name": "Spring sale (resent)",
        "channel": "email",
        "sent_at": None,
        "archived": False,
    }


async def test_campaigns_are_listed_by_id_with_cursors(client: httpx.AsyncClient) -> None:
    for campaign_id in ("c", "a", "e", "b", "d"):
        await client.put(f"/api/campaigns/{campaign_id}", json={"name": campaign_id.upper(), "channel": "sms"})

    first = (await client.get("/api/campaigns", params={"limit": 2})).json()
    second = (await client.get("/api/campaigns", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await client.get("/api/campaigns", params={"limit": 2, "cursor": second["next_cursor"]})).json()

    assert [c["id"] for c in first["items"] + second["items"] + third["items"]] == ["a", "b", "c", "d", "e"]
    assert third["next_cursor"] is None
    assert (await client.get("/api/campaigns")).json()["next_cursor"] is None


async def test_campaign_errors(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/campaigns/nope")
    assert missing.status_code == 404
    assert missing.json() == {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No such campaign."}

    bad_channel = await client.put("/api/campaigns/x", json={"name": "X", "channel": "fax"})
    assert bad_channel.status_code == 400
    assert bad_channel.json()["errors"] == [{"field": "channel", "message": "Invalid enum value 'fax'"}]

    no_name = await client.put("/api/campaigns/x", json={"channel": "email"})
    assert no_name.json()["errors"] == [{"field": "name", "message": "Object missing required field `name`"}]
    naive = await client.put(
        "/api/campaigns/x", json={"name": "X", "channel": "email", "sent_at": "2026-03-01T10:00:00"}
    )
    assert naive.status_code == 400
    assert naive.json()["errors"][0]["field"] == "sent_at"
    assert (await client.get("/api/campaigns/x")).status_code == 404
