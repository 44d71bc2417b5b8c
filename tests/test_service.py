"""/health checks its dependencies for real; /schema documents the whole API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from conftest import service_env, start_api
from contactreports.cli.embedded_redis import free_port

JSON, PROBLEM = "application/json", "application/problem+json"
DOCS_OPENAPI = Path(__file__).parents[1] / "docs" / "openapi.json"
ERRORS = {"400": PROBLEM, "401": PROBLEM}
# What changes anything is refused to a read-only key.
WRITE_ERRORS = {**ERRORS, "403": PROBLEM}
# Every operation: its responses and their content types, as the running API gives them.
OPERATIONS = {
    ("get", "/api/actions"): {"200": JSON, **ERRORS},
    ("get", "/api/campaigns"): {"200": JSON, **ERRORS},
    ("get", "/api/campaigns/{campaign_id}"): {"200": JSON, **ERRORS, "404": PROBLEM},
    ("put", "/api/campaigns/{campaign_id}"): {"200": JSON, "201": JSON, **WRITE_ERRORS, "413": PROBLEM, "503": PROBLEM},
    ("post", "/api/events"): {"200": JSON, **WRITE_ERRORS, "413": PROBLEM, "429": PROBLEM, "503": PROBLEM},
    ("get", "/api/reports"): {"200": JSON, **ERRORS},
    ("post", "/api/reports"): {
        "202": JSON,
        **WRITE_ERRORS,
        "409": PROBLEM,
        "413": PROBLEM,
        "429": PROBLEM,
        "503": PROBLEM,
    },
    ("get", "/api/reports/{report_id}"): {"200": JSON, **ERRORS, "404": PROBLEM},
    ("delete", "/api/reports/{report_id}"): {"204": None, **WRITE_ERRORS, "404": PROBLEM, "503": PROBLEM},
    ("get", "/api/reports/{report_id}/rows"): {"200": JSON, **ERRORS, "404": PROBLEM, "409": PROBLEM},
    ("get", "/api/reports/{report_id}/export"): {
        "200": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet application/x-ndjson text/csv",
        **ERRORS,
        "404": PROBLEM,
        "409": PROBLEM,
        "422": PROBLEM,
    },
    ("post", "/api/reports/{report_id}/rerun"): {
        "202": JSON,
        **WRITE_ERRORS,
        "404": PROBLEM,
        "409": PROBLEM,
        "429": PROBLEM,
        "503": PROBLEM,
    },
    ("get", "/api/webhooks"): {"200": JSON, **ERRORS},
    ("post", "/api/webhooks/token"): {"201": JSON, **WRITE_ERRORS, "503": PROBLEM},
    ("put", "/api/webhooks/{provider}"): {"200": JSON, **WRITE_ERRORS, "404": PROBLEM, "413": PROBLEM, "503": PROBLEM},
    ("delete", "/api/webhooks/{provider}"): {"204": None, **WRITE_ERRORS, "404": PROBLEM, "503": PROBLEM},
    # A read-only key may not even list the keys.
    ("get", "/api/keys"): {"200": JSON, **WRITE_ERRORS},
    ("post", "/api/keys"): {"201": JSON, **WRITE_ERRORS, "413": PROBLEM, "503": PROBLEM},
    ("post", "/api/keys/{key_id}/rotate"): {"200": JSON, **WRITE_ERRORS, "404": PROBLEM, "503": PROBLEM},
    ("delete", "/api/keys/{key_id}"): {"204": None, **WRITE_ERRORS, "404": PROBLEM, "409": PROBLEM, "503": PROBLEM},
    ("post", "/webhooks/{provider}/{account_token}"): {
        "200": JSON,
        **ERRORS,
        "404": PROBLEM,
        "413": PROBLEM,
        "429": PROBLEM,
        "502": PROBLEM,
        "503": PROBLEM,
    },
    ("get", "/health"): {"200": JSON, "503": JSON},
}


async def test_health_is_ok_when_database_and_redis_answer(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_health_is_503_naming_redis_when_it_is_down(database_url: str, logs: Path) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    server, url = start_api(service_env(database_url, nobody_listens), logs, "no-redis", redis=False)
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            response = await http.get("/health")
    finally:
        server.stop()

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "redis": "down"}


async def test_the_openapi_document_describes_every_response(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as http:
        document = (await http.get("/schema/openapi.json")).json()
        browsable = await http.get("/schema")

    described = {
        (method, path): {
            code: " ".join(sorted(response.get("content", {}))) or None
            for code, response in operation["responses"].items()
        }
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert described == OPERATIONS
    paths = document["paths"]
    assert sorted(paths["/api/events"]["post"]["requestBody"]["content"]) == [
        "application/json",
        "application/x-ndjson",
    ]
    assert list(paths["/api/reports"]["post"]["responses"]["202"]["headers"]) == ["Location"]
    assert list(paths["/api/reports/{report_id}/export"]["get"]["responses"]["200"]["headers"]) == [
        "Content-Disposition"
    ]
    assert document["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An account's API key.",
    }
    problem = document["components"]["schemas"]["Problem"]
    assert sorted(problem["required"]) == ["detail", "status", "title", "type"]
    assert problem["properties"]["active_report_id"] == {"oneOf": [{"type": "string"}]}
    assert browsable.status_code == 200
    assert "text/html" in browsable.headers["content-type"]


async def test_docs_openapi_json_is_the_document_the_api_serves(api: str) -> None:
    served = httpx.get(f"{api}/schema/openapi.json").json()

    assert json.loads(DOCS_OPENAPI.read_text()) == served, (
        "docs/openapi.json is not what the API serves: write it again with "
        "`.venv/bin/python -m contactreports.openapi_dump docs/openapi.json`"
    )


async def test_a_rows_details_is_documented_as_the_object_it_always_is(api: str) -> None:
    # Found by schemathesis: `dict | Raw` was documented as `oneOf: [object, {}]`, which every object matches
    # twice, so no row of GET /api/reports/{id}/rows was valid against the document.
    async with httpx.AsyncClient(base_url=api) as http:
        document = (await http.get("/schema/openapi.json")).json()

    details = document["components"]["schemas"]["RowView"]["properties"]["details"]
    assert details == {
        "type": "object",
        "additionalProperties": {},
        "description": "The event's details; {} when it had none.",
    }


async def test_options_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    # Litestar 2's own answer named only the first handler's methods: OPTIONS /api/reports hid GET.
    for path in sorted({path for _, path in OPERATIONS}):
        methods = ", ".join(sorted({"OPTIONS", *(method.upper() for method, other in OPERATIONS if other == path)}))

        response = await client.options(
            path.format(report_id="r1", campaign_id="c1", provider="postmark", account_token="t1", key_id="k1")
        )

        assert (response.status_code, response.headers.get("allow"), response.content) == (204, methods, b""), path


async def test_the_action_catalogue_lists_every_category_and_action(client) -> None:
    response = await client.get("/api/actions")

    assert response.status_code == 200
    categories = response.json()["categories"]
    assert [c["name"] for c in categories] == ["email", "campaign", "sms", "automation"]
    names = {c["name"]: [a["name"] for a in c["actions"]] for c in categories}
    assert names == {
        "email": [
            f"email.{a}"
            for a in ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "spam_reported", "forwarded")
        ],
        "campaign": [
            f"campaign.{a}"
            for a in ("sent", "profile_updated", "form_submitted", "subscribed", "optin_requested", "optin_confirmed")
        ],
        "sms": [f"sms.{a}" for a in ("sent", "delivered", "clicked", "failed", "opted_out")],
        "automation": [
            f"automation.{a}"
            for a in ("entered", "step_completed", "filtered", "stopped", "expired", "cancelled", "failed", "completed")
        ],
    }
    assert categories[0]["label"] == "Email"
    assert categories[0]["actions"][2] == {"name": "email.opened", "label": "Opened"}
