"""/health checks its dependencies for real; /schema documents the whole API."""

from __future__ import annotations

from pathlib import Path

import httpx

from conftest import Process, service_env, wait_until
from contactreports.embedded_redis import free_port

PATHS = {
    "/api/actions": {"get"}, "/api/campaigns": {"get"}, "/api/campaigns/{campaign_id}": {"get", "put"},
    "/api/events": {"post"}, "/api/reports": {"get", "post"}, "/api/reports/{report_id}": {"get", "delete"},
    "/api/reports/{report_id}/rows": {"get"}, "/api/reports/{report_id}/export": {"get"},
    "/api/reports/{report_id}/rerun": {"post"}, "/health": {"get"},
}


async def test_health_is_ok_when_database_and_redis_answer(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_health_is_503_naming_redis_when_it_is_down(database_url: str, logs: Path) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    port = free_port()
    server = Process(["serve", "--port", str(port)], service_env(database_url, nobody_listens), logs / "no-redis.log")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async def answered() -> httpx.Response | None:
                try:
                    return await http.get("/health")
                except httpx.TransportError:  # not listening yet
                    return None

            response = await wait_until(answered)
    finally:
        server.stop()

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "redis": "down"}


async def test_the_openapi_document_covers_every_endpoint(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        document = (await http.get("/schema/openapi.json")).json()
        browsable = await http.get("/schema")

    assert {path: set(item) for path, item in document["paths"].items()} == PATHS
    assert document["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An account's API key."}
    create = document["paths"]["/api/reports"]["post"]
    assert set(create["responses"]) == {"202", "400", "401", "409"}
    assert create["responses"]["409"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"}
    assert "active_report_id" in document["components"]["schemas"]["Problem"]["properties"]
    assert browsable.status_code == 200
    assert "text/html" in browsable.headers["content-type"]


async def test_the_action_catalogue_lists_every_category_and_action(client) -> None:
    response = await client.get("/api/actions")

    assert response.status_code == 200
    categories = response.json()["categories"]
    assert [c["name"] for c in categories] == ["email", "campaign", "sms", "automation"]
    names = {c["name"]: [a["name"] for a in c["actions"]] for c in categories}
    assert names == {
        "email": [f"email.{a}" for a in ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed",
                                          "spam_reported", "forwarded")],
        "campaign": [f"campaign.{a}" for a in ("sent", "profile_updated", "form_submitted", "subscribed",
                                                "optin_requested", "optin_confirmed")],
        "sms": [f"sms.{a}" for a in ("sent", "delivered", "clicked", "failed", "opted_out")],
        "automation": [f"automation.{a}" for a in ("entered", "step_completed", "filtered", "stopped", "expired",
                                                    "cancelled", "failed", "completed")],
    }
    assert categories[0]["label"] == "Email"
    assert categories[0]["actions"][2] == {"name": "email.opened", "label": "Opened"}
