"""The request class of the app: a body the JSON decoder cannot read is a 400, never a 500."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

from contactreports.api.errors import invalid
from contactreports.ingest import UNDECODABLE, undecodable
from contactreports.models import FieldError


class ApiRequest(Request):
    async def json(self) -> Any:
        try:
            return await super().json()
        except SerializationException as error:  # Litestar's wrapping of msgspec's DecodeError
            raise invalid([FieldError("body", undecodable(error.__cause__ or error))]) from error
        except UNDECODABLE as error:  # what Litestar does not wrap
            raise invalid([FieldError("body", undecodable(error))]) from error
