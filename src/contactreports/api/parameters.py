"""Path and query parameters shared by the API's handlers and the web page's."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

MAX_LIMIT = 500
# The bounds again for the document: Litestar writes `ge`/`le` as floats (500.0), which generated
# clients then type as numbers, not integers.
Limit = Annotated[
    int,
    Parameter(
        ge=1,
        le=MAX_LIMIT,
        description=f"Items per page (1 to {MAX_LIMIT}).",
        schema_extra={"minimum": 1, "maximum": MAX_LIMIT},
    ),
]
Cursor = Annotated[str | None, Parameter(max_length=1000, description="`next_cursor` of the previous page.")]
ReportId = Annotated[str, Parameter(max_length=64)]
