"""The request class of the app: a JSON body means exactly what the OpenAPI document says.

Litestar converts a decoded body to the handler's `data` type leniently (`strict=False`, meant
for query strings, whose values are all text): `"archived": 0` or `"true"` became a boolean and
`"sent_at": 1700000000` a timestamp with no offset. The body is converted here, strictly, to that
type (`conversion.convert_body`); Litestar then only checks an already-typed value. A body the
JSON decoder cannot read is a 400, never a 500.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from contactreports.api.errors import invalid
from contactreports.conversion import convert_body
from contactreports.ingest import UNDECODABLE, undecodable
from contactreports.models import FieldError


class ApiRequest(Request):
    async def json(self) -> Any:
        try:
            value = await super().json()
        except SerializationException as error:  # Litestar's wrapping of msgspec's DecodeError
            raise invalid([FieldError("body", undecodable(error.__cause__ or error))]) from error
        except UNDECODABLE as error:  # what Litestar does not wrap
            raise invalid([FieldError("body", undecodable(error))]) from error
        data = self.route_handler.parsed_data_field
        return value if data is None else convert_body(value, data.annotation)
