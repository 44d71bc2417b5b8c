"""Path and query parameters shared by the API's handlers and the web page's."""

from __future__ import annotations

from typing import Annotated

from litestar.params import Parameter

Limit = Annotated[int, Parameter(ge=1, le=500, description="Items per page (1 to 500).")]
Cursor = Annotated[str | None, Parameter(max_length=1000, description="`next_cursor` of the previous page.")]
ReportId = Annotated[str, Parameter(max_length=64)]
