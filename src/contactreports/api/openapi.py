"""What Litestar cannot infer for the OpenAPI document: downloads, the NDJSON request body, webhook bodies."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import (
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)

from contactreports.exports import MEDIA_TYPES

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
            content={
                media_type.split(";")[0]: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=fmt))
                for media_type, fmt in (
                    (MEDIA_TYPES["csv"], None),
                    (MEDIA_TYPES["ndjson"], None),
                    (MEDIA_TYPES["xlsx"], "binary"),
                )
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
class WebhookDeliveryOperation(Operation):
    """A delivery's body is the provider's own format, read raw: there is no `data` to describe."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            description=(
                "Exactly what the provider posts (JSON for most; Amazon SNS sends JSON as text/plain), "
                "checked by its adapter."
            ),
            content={"application/json": OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))},
            required=True,
        )
