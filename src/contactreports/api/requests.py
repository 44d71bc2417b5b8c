"""The request class of the app: a body the JSON decoder cannot read is a 400, never a 500."""

from __future__ import annotations

from typing import Any

from litestar import Request

from contactreports.api.errors import invalid
from contactreports.ingest import UNDECODABLE, undecodable
from contactreports.models import FieldError


class ApiRequest(Request):
    async def json(self) -> Any:
        try:
            return await super().json()
        except UNDECODABLE as error:  # Litestar itself handles only msgspec's DecodeError
            raise invalid([FieldError("body", undecodable(error))]) from error
