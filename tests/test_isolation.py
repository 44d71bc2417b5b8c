"""Accounts are isolated: every endpoint given another account's ids answers 404, and changes nothing.

The matrix is the app's own OpenAPI document: every operation with a path parameter is called
with account B's key on account A's real ids. A new parametrised operation that the tables below
cannot fill fails the test, so it cannot go unchecked.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from conftest import ApiAccount
from contactreports.store.database import Database
from helpers import ALL_EMAIL, all_rows, create_report, fetched, ingest, oracle, put_campaign, wait_done, webhook_url

SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}
A_CAMPAIGNS = {"spring": {"name": "A's spring sale", "archived": False}, "a-only": {"name": "A only", "archived": True}}
A_EVENTS = [
    {
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": "2026-03-01T09:00:00Z",
        "campaign_id": "spring",
    },
    {"email": "ann@example.com", "action": "email.clicked", "occurred_at": "2026-03-01T09:05:00Z", "details": {"a": 1}},
]
B_CAMPAIGN = {"name": "B's own campaign", "channel": "sms", "sent_at": None, "archived": False}
B_EVENTS = [{"email": "ann@example.com", "action": "email.bounced", "occurred_at": "2026-04-01T00:00:00Z"}]


@dataclass
class Owned:
    """Account A's real ids, by the path parameter that names them."""

    report_id: str
    campaign_id: str
    webhook_token: str
    key_id: str


# How to fill each path parameter with one of A's ids, and the resource its 404 names.
PATH_IDS: dict[str, tuple[Callable[[Owned], str], str]] = {
    "report_id": (lambda owned: owned.report_id, "report"),
    "campaign_id": (lambda owned: owned.campaign_id, "campaign"),
    # Not an id of A's: every account has each provider, and a secret of its own for it.
    "provider": (lambda _: "postmark", "webhook provider"),
    "account_token": (lambda owned: owned.webhook_token, "webhook token"),
    "key_id": (lambda owned: owned.key_id, "API key"),
}
# Required query parameters: values valid for A's resources, so only ownership decides the answer.
QUERY = {"format": "csv"}
# Request bodies, valid ones for the same reason.
WEBHOOK = ("POST", "/webhooks/{provider}/{account_token}")
BODIES = {
    ("PUT", "/api/campaigns/{campaign_id}"): B_CAMPAIGN,
    ("PUT", "/api/webhooks/{provider}"): {"secret": "b-user:b-long-random-password"},
    WEBHOOK: {"RecordType": "Delivery", "Recipient": "ann@example.com", "DeliveredAt": "2026-03-02T00:00:00Z"},
}
# Not a 404, and why: campaign ids are chosen by each account (API.md), so B's PUT on A's campaign
# id creates B's own campaign (201) and leaves A's alone. B sets and removes its own postmark secret.
# A webhook takes no API key: A's token names A, but only A's secret gets a delivery in (401).
NOT_404 = {
    ("PUT", "/api/campaigns/{campaign_id}"): 201,
    ("PUT", "/api/webhooks/{provider}"): 200,
    ("DELETE", "/api/webhooks/{provider}"): 204,
    WEBHOOK: 401,
}
# The matrix may grow, never shrink: these at least are in the OpenAPI document.
KNOWN = {
    ("GET", "/api/reports/{report_id}"),
    ("GET", "/api/reports/{report_id}/rows"),
    ("GET", "/api/reports/{report_id}/export"),
    ("POST", "/api/reports/{report_id}/rerun"),
    ("DELETE", "/api/reports/{report_id}"),
    ("GET", "/api/campaigns/{campaign_id}"),
    ("PUT", "/api/campaigns/{campaign_id}"),
    ("PUT", "/api/webhooks/{provider}"),
    ("DELETE", "/api/webhooks/{provider}"),
    WEBHOOK,
    ("POST", "/api/keys/{key_id}/rotate"),
    ("DELETE", "/api/keys/{key_id}"),
}
# Reads first and deletes last, so that a leak shows where it happens; the operations that are no
# 404 (B's own campaign) after all the 404s, so B's campaign is not there when they are read.
ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the template, e.g. /api/reports/{report_id}
    spec: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def path_parameters(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    def required_query(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "query" and p.get("required")]

    def request(self, ids: Callable[[str], str]) -> dict[str, Any]:
        """httpx.request arguments, each path parameter given by `ids`; fails on what the tables cannot fill."""
        unknown = [name for name in self.path_parameters() if name not in PATH_IDS]
        unknown += [name for name in self.required_query() if name not in QUERY]
        if self.spec.get("requestBody", {}).get("required") and self.key not in BODIES:
            unknown.append("request body")
        assert not unknown, f"the isolation matrix cannot fill {unknown} of {self.method} {self.path}: teach it"
        url = re.sub(r"{(\w+)}", lambda match: ids(match[1]), self.path)
        request: dict[str, Any] = {
            "method": self.method,
            "url": url,
            "params": {q: QUERY[q] for q in self.required_query()},
        }
        if self.key in BODIES:
            request["json"] = BODIES[self.key]
        return request

    def expected_404(self) -> dict[str, Any]:
        noun = PATH_IDS[self.path_parameters()[-1]][1]
        return {"type": "about:blank", "title": "Not Found", "status": 404, "detail": f"No such {noun}."}


def parametrised_operations(document: dict[str, Any]) -> list[Operation]:
    operations = [
        Operation(method.upper(), path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in ("get", "put", "post", "delete", "patch") and "{" in path
    ]
    return sorted(operations, key=lambda op: (op.key in NOT_404, ORDER[op.method], op.path))


@pytest.fixture
async def owner(client: httpx.AsyncClient) -> Owned:
    """Account A: campaigns, events, a done report with rows, a webhook token, a postmark secret and a
    second API key (so that revoking its first one would not be refused as its last)."""
    for campaign_id, campaign in A_CAMPAIGNS.items():
        await put_campaign(client, campaign_id, campaign["name"], archived=campaign["archived"])
    await ingest(client, A_EVENTS)
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])
    assert report["row_count"] == 2
    token = await webhook_url(client, "postmark", "a-user:a-long-random-password")
    key = await client.post("/api/keys", json={"name": "second"})
    assert key.status_code == 201, key.text
    return Owned(
        report_id=report["id"], campaign_id="spring", webhook_token=token.rsplit("/", 1)[1], key_id=key.json()["id"]
    )


async def what_a_has(client: httpx.AsyncClient, db: Database, account: ApiAccount, owned: Owned) -> dict[str, Any]:
    """Everything of A's, as A sees it through the API and as the database holds it."""
    report_path = f"/api/reports/{owned.report_id}"
    return {
        "report": (await client.get(report_path)).json(),
        "rows": await all_rows(client, owned.report_id),
        "export": (await client.get(f"{report_path}/export", params={"format": "csv"})).content,
        "campaign": (await client.get(f"/api/campaigns/{owned.campaign_id}")).json(),
        "reports": (await client.get("/api/reports")).json(),
        "campaigns": (await client.get("/api/campaigns")).json(),
        "webhooks": (await client.get("/api/webhooks")).json(),
        "keys": (await client.get("/api/keys")).json(),
        "database": await fetched(
            db,
            "SELECT id, run, status, attempts, row_count, finished_at FROM reports WHERE account_id = :account_id"
            " ORDER BY pk",
            account_id=account.id,
        )
        + await fetched(
            db,
            "SELECT id, name, channel, archived FROM campaigns WHERE account_id = :account_id ORDER BY id",
            account_id=account.id,
        )
        + await fetched(
            db,
            "SELECT (SELECT count(*) FROM events WHERE account_id = :account_id) AS events,"
            " (SELECT count(*) FROM archived_events WHERE account_id = :account_id) AS archived_events",
            account_id=account.id,
        )
        + await fetched(
            db,
            "SELECT provider, secret, updated_at FROM webhook_secrets WHERE account_id = :account_id ORDER BY provider",
            account_id=account.id,
        )
        + await fetched(
            db,
            "SELECT id, name, read_only, secret_hash FROM api_keys WHERE account_id = :account_id ORDER BY pk",
            account_id=account.id,
        ),
    }


async def test_another_accounts_resources_are_404(
    client: httpx.AsyncClient, api: str, db: Database, account: ApiAccount, owner: Owned, new_account
) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    operations = parametrised_operations(document)
    assert KNOWN <= {op.key for op in operations}
    before = await what_a_has(client, db, account, owner)
    intruder = await new_account()
    never = f"never-{uuid.uuid4().hex[:12]}"

    leaks = []
    async with httpx.AsyncClient(base_url=api, headers=intruder.headers, timeout=30) as other:
        for op in operations:
            on_a = await other.request(**op.request(lambda name: PATH_IDS[name][0](owner)))
            if op.key in NOT_404:
                if on_a.status_code != NOT_404[op.key]:
                    leaks.append((op.key, on_a.status_code, on_a.text))
                continue
            # Exactly the answer to an id that exists nowhere: nothing tells B that A's id exists.
            on_nothing = await other.request(**op.request(lambda _: never))
            answer = (on_a.status_code, on_a.headers["content-type"], on_a.json())
            if answer != (404, "application/problem+json", op.expected_404()) or on_nothing.json() != on_a.json():
                leaks.append((op.key, on_a.status_code, on_a.text))

    assert leaks == []
    assert await what_a_has(client, db, account, owner) == before


def test_the_matrix_fails_on_an_operation_it_cannot_fill() -> None:
    new = Operation("POST", "/api/reports/{report_id}/share/{user_id}", {"requestBody": {"required": True}})

    with pytest.raises(AssertionError, match=re.escape("cannot fill ['user_id', 'request body'] of POST")):
        new.request(lambda name: "x")


async def test_another_accounts_lists_show_only_its_own_items(
    client: httpx.AsyncClient, api: str, owner: Owned, new_account
) -> None:
    intruder = await new_account()
    async with httpx.AsyncClient(base_url=api, headers=intruder.headers, timeout=30) as other:
        assert (await other.get("/api/reports")).json() == {"items": [], "next_cursor": None}
        assert (await other.get("/api/campaigns")).json() == {"items": [], "next_cursor": None}
        # Same campaign id, same contact, same search: B gets its own campaign, events and rows only.
        assert (await other.put(f"/api/campaigns/{owner.campaign_id}", json=B_CAMPAIGN)).status_code == 201
        await ingest(other, [{**event, "campaign_id": owner.campaign_id} for event in B_EVENTS])
        report = await wait_done(other, (await create_report(other, **SEARCH))["id"])

        campaigns = (await other.get("/api/campaigns")).json()
        reports = (await other.get("/api/reports")).json()
        rows = await all_rows(other, report["id"])

    assert campaigns == {"items": [{"id": owner.campaign_id, **B_CAMPAIGN}], "next_cursor": None}
    assert [item["id"] for item in reports["items"]] == [report["id"]]
    b_campaigns = {owner.campaign_id: {"name": B_CAMPAIGN["name"], "archived": False}}
    b_events = [{**event, "campaign_id": owner.campaign_id} for event in B_EVENTS]
    assert rows == oracle(
        b_events, b_campaigns, email=SEARCH["email"], actions=ALL_EMAIL, start=SEARCH["start"], end=SEARCH["end"]
    )
    assert (await client.get(f"/api/campaigns/{owner.campaign_id}")).json()["name"] == "A's spring sale"


async def test_another_accounts_campaign_id_is_unknown_in_events(
    client: httpx.AsyncClient, api: str, db: Database, owner: Owned, new_account
) -> None:
    """An id in a body is scoped too: B's events cannot name a campaign only A has."""
    intruder = await new_account()
    async with httpx.AsyncClient(base_url=api, headers=intruder.headers, timeout=30) as other:
        response = await other.post("/api/events", json=[{**B_EVENTS[0], "campaign_id": "a-only"}])

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == ["[0].campaign_id"]
    stored = await db.fetch_value(
        "SELECT count(*) FROM events WHERE account_id = :account_id", {"account_id": intruder.id}
    )
    assert stored == 0
