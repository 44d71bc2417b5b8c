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
