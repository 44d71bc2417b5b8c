"""What Litestar cannot infer for the OpenAPI document: downloads, the NDJSON request body, webhook bodies."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import (
    Example,
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from contactreports.exports import MEDIA_TYPES
from contactreports.ingest import MAX_CAMPAIGN_ID

NDJSON = "application/x-ndjson"


@dataclass
class ExportOperation(Operation):
    """The export's 200 is a file in one of three formats, not JSON."""

    def __post_init__(self) -> None:
        assert self.responses is not None
        self.responses["200"] = OpenAPIResponse(
            description="The rows as a download, in the format asked for.",
            headers={
                "Content-Disposition": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.STRING),
                    description='attachment; filename="contact-report-<id>.<format>"',
                )
            },
            # Bytes in every format: a generated client that reads the first type as text would
            # read an XLSX as text too.
            content={
                media_type.split(";")[0]: OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                )
                for media_type in MEDIA_TYPES.values()
            },
        )


@dataclass
class EventBatchOperation(Operation):
    """Events come as a JSON array or as NDJSON, one event a line."""

    def __post_init__(self) -> None:
        assert self.request_body is not None
        array = self.request_body.content["application/json"].schema
        assert isinstance(array, Schema)
        self.request_body.content[NDJSON] = OpenAPIMediaType(schema=array.items)


@dataclass
class CampaignIdOperation(Operation):
    """The campaign id is the rest of the path, read raw (api/campaigns.py says why): Litestar's
    `path` parameter would be documented as a URI, not as what a client writes there."""

    def __post_init__(self) -> None:
        for parameter in self.parameters or []:
            if isinstance(parameter, Parameter) and parameter.name == "campaign_id":
                parameter.description = (
                    "The campaign's id, percent-encoded as one path segment: `/` as `%2F`, `?` as `%3F`, `#` as "
                    "`%23`, `%` as `%25`, a space as `%20`. Ids the webhooks make of a provider's tags may hold "
                    "any of them: `sendgrid:category:news/2026 spring` is "
                    "`sendgrid%3Acategory%3Anews%2F2026%20spring`. An id of `.` or `..` is written `%2E` or "
                    "`%2E%2E`, as URLs take those as steps. Everything after `/api/campaigns/` is the id."
                )
                parameter.schema = Schema(
                    type=OpenAPIType.STRING,
                    min_length=1,
                    max_length=MAX_CAMPAIGN_ID,
                    pattern=r"^[^\x00-\x1f\x7f]+$",
                    examples=["spring-sale"],
                )
                parameter.examples = {"campaign_id-example-1": Example(value="spring-sale")}


@dataclass
class PublicOperation(Operation):
    """Needs no API key, and says so (`security: []`): an operation without `security` would take
    the document's default. Litestar writes none when a handler has no security requirement."""

    def __post_init__(self) -> None:
        self.security = []


@dataclass
class WebhookDeliveryOperation(PublicOperation):
    """A delivery's body is the provider's own format, read raw: there is no `data` to describe.
    The account is named by the token in the path, not by an API key."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            description=(
                "Exactly what the provider posts (JSON for most; Amazon SNS sends JSON as text/plain), "
                "checked by its adapter."
            ),
            content={"application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))},
            required=True,
        )
