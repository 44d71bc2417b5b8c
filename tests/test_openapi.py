"""The OpenAPI document is one that tools and generated clients can trust (issue 19)."""

from __future__ import annotations

import httpx
from openapi_spec_validator import OpenAPIV31SpecValidator


async def served_document(api: str) -> dict:
    async with httpx.AsyncClient(base_url=api) as http:
        response = await http.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


async def test_the_served_document_is_valid_openapi_3_1(api: str) -> None:
    document = await served_document(api)

    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in OpenAPIV31SpecValidator(document).iter_errors()
    ]
    assert document["openapi"].startswith("3.1.")
    assert errors == []


async def test_the_location_of_an_accepted_report_is_a_required_string(api: str) -> None:
    paths = (await served_document(api))["paths"]

    for operation in (paths["/api/reports"]["post"], paths["/api/reports/{report_id}/rerun"]["post"]):
        location = operation["responses"]["202"]["headers"]["Location"]
        assert (location["schema"], location["required"]) == ({"type": "string"}, True)


OPERATION_IDS = {
    ("get", "/api/actions"): "listActions",
    ("get", "/api/campaigns"): "listCampaigns",
    ("get", "/api/campaigns/{campaign_id}"): "getCampaign",
    ("put", "/api/campaigns/{campaign_id}"): "putCampaign",
    ("post", "/api/events"): "ingestEvents",
    ("get", "/api/reports"): "listReports",
    ("post", "/api/reports"): "createReport",
    ("get", "/api/reports/{report_id}"): "getReport",
    ("delete", "/api/reports/{report_id}"): "deleteReport",
    ("get", "/api/reports/{report_id}/rows"): "listReportRows",
    ("get", "/api/reports/{report_id}/export"): "exportReport",
    ("post", "/api/reports/{report_id}/rerun"): "rerunReport",
    ("get", "/api/webhooks"): "getWebhooks",
    ("post", "/api/webhooks/token"): "rotateWebhookToken",
    ("put", "/api/webhooks/{provider}"): "setWebhookSecret",
    ("delete", "/api/webhooks/{provider}"): "deleteWebhookSecret",
    ("get", "/api/keys"): "listApiKeys",
    ("post", "/api/keys"): "createApiKey",
    ("delete", "/api/keys/{key_id}"): "revokeApiKey",
    ("post", "/api/keys/{key_id}/rotate"): "rotateApiKey",
    ("post", "/webhooks/{provider}/{account_token}"): "receiveWebhook",
    ("get", "/health"): "getHealth",
}


async def test_every_operation_has_a_readable_id(api: str) -> None:
    paths = (await served_document(api))["paths"]

    ids = {
        (method, path): operation["operationId"] for path, item in paths.items() for method, operation in item.items()
    }
    assert ids == OPERATION_IDS


async def test_components_are_named_for_what_they_hold_without_module_paths(api: str) -> None:
    document = await served_document(api)
    schemas = document["components"]["schemas"]

    assert [name for name in schemas if not name.isidentifier()] == []
    pages = {"ReportPage": "ReportOut", "RowPage": "RowView", "CampaignPage": "CampaignOut", "ApiKeyPage": "ApiKeyOut"}
    for page, item in pages.items():
        assert schemas[page]["properties"]["items"] == {
            "items": {"$ref": f"#/components/schemas/{item}"},
            "type": "array",
        }
    listed = document["paths"]["/api/reports"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"$ref": "#/components/schemas/ReportPage"}


async def test_response_timestamps_are_date_times_and_row_details_take_any_keys(api: str) -> None:
    schemas = (await served_document(api))["components"]["schemas"]

    report = schemas["ReportOut"]["properties"]
    for name in ("start", "end", "created_at", "started_at", "finished_at"):
        assert report[name]["format"] == "date-time", name
    assert schemas["RowView"]["properties"]["occurred_at"]["format"] == "date-time"
    assert schemas["RowView"]["properties"]["details"]["additionalProperties"] == {}


async def test_what_needs_no_api_key_says_so(api: str) -> None:
    paths = (await served_document(api))["paths"]

    assert paths["/health"]["get"]["security"] == []
    assert paths["/webhooks/{provider}/{account_token}"]["post"]["security"] == []
    assert paths["/api/reports"]["get"]["security"] == [{"BearerAuth": []}]


async def test_page_limits_have_integer_bounds(api: str) -> None:
    paths = (await served_document(api))["paths"]

    limits = [
        parameter["schema"]
        for item in paths.values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "limit"
    ]
    assert len(limits) == 4  # reports, rows, campaigns, keys
    assert all((type(s["minimum"]), type(s["maximum"]), s["maximum"]) == (int, int, 500) for s in limits), limits


async def test_an_export_is_bytes_in_every_format(api: str) -> None:
    paths = (await served_document(api))["paths"]

    content = paths["/api/reports/{report_id}/export"]["get"]["responses"]["200"]["content"]
    assert sorted(content) == [
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/x-ndjson",
        "text/csv",
    ]
    assert all(media["schema"] == {"type": "string", "format": "binary"} for media in content.values())
