"""Campaigns: create or replace, read, list with cursors."""

from __future__ import annotations

import httpx
import pytest

from contactreports.cli.client import _segment


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
    assert bad_channel.json()["errors"] == [
        {"field": "channel", "message": "'fax' is not one of automation, email, sms, whatsapp"}
    ]

    no_name = await client.put("/api/campaigns/x", json={"channel": "email"})
    assert no_name.json()["errors"] == [{"field": "name", "message": "Object missing required field `name`"}]
    naive = await client.put(
        "/api/campaigns/x", json={"name": "X", "channel": "email", "sent_at": "2026-03-01T10:00:00"}
    )
    assert naive.status_code == 400
    assert naive.json()["errors"][0]["field"] == "sent_at"
    assert (await client.get("/api/campaigns/x")).status_code == 404


@pytest.mark.parametrize(
    "campaign_id",
    ["news/2026 spring?x#y", "100%", "%2F", "a//b/", "/leading", "with space", "ünïcode ✓", "..", ".", "a/../b"],
)
async def test_any_id_percent_encoded_as_one_segment_is_the_id(client: httpx.AsyncClient, campaign_id: str) -> None:
    # Encoded as the command-line client encodes an id.
    path = f"/api/campaigns/{_segment(campaign_id)}"

    created = await client.put(path, json={"name": "N", "channel": "email"})

    expected = {"id": campaign_id, "name": "N", "channel": "email", "sent_at": None, "archived": False}
    assert (created.status_code, created.json()) == (201, expected)
    assert (await client.get(path)).json() == expected
    assert (await client.get("/api/campaigns")).json()["items"] == [expected]


async def test_an_id_sent_unencoded_is_the_rest_of_the_path(client: httpx.AsyncClient) -> None:
    created = await client.put("/api/campaigns/news/2026", json={"name": "N", "channel": "email"})

    assert (created.status_code, created.json()["id"]) == (201, "news/2026")
    assert (await client.get("/api/campaigns/news%2F2026")).json()["id"] == "news/2026"


async def test_a_path_that_does_not_start_as_the_routes_is_read_as_litestar_reads_it(client: httpx.AsyncClient) -> None:
    # Routed here too: where the id starts in it is Litestar's guess, slashes collapsed.
    created = await client.put("/api//campaigns/a//b/", json={"name": "N", "channel": "email"})

    assert (created.status_code, created.json()["id"]) == (201, "a/b")


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/campaigns/%FF", "not valid UTF-8 once percent-decoded"),
        ("/api/campaigns/" + "x" * 201, "Expected `str` of length <= 200"),
    ],
)
async def test_a_path_naming_no_id_a_campaign_can_have_is_a_400(
    client: httpx.AsyncClient, path: str, message: str
) -> None:
    for response in (await client.get(path), await client.put(path, json={"name": "N", "channel": "email"})):
        assert (response.status_code, response.json()["errors"]) == (
            400,
            [{"field": "campaign_id", "message": message}],
        )
    assert (await client.get("/api/campaigns")).json()["items"] == []


async def test_an_empty_body_names_only_the_body_even_once_the_openapi_document_is_made(
    client: httpx.AsyncClient,
) -> None:
    # Making the document once added the path parameter to the handler's fields (Litestar stubs a
    # parameter no handler or dependency takes), and every later 400 named it too.
    assert (await client.get("/schema/openapi.json")).status_code == 200

    response = await client.put("/api/campaigns/x", content=b"")

    assert response.json()["errors"] == [{"field": "body", "message": "a JSON body is required"}]
