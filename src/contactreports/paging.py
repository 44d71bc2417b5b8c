"""Opaque, signed cursors: where each list endpoint's next page starts.

A cursor is the position after the last item shown, signed with HMAC together with the
account and the list it belongs to: a tampered cursor, or one from another account or
list, is invalid input (the API's 400), never another account's data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec

from contactreports.models import FieldError, InvalidFields

_SIGNATURE_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    def __init__(self, secret: bytes):
        self._secret = secret

    def _sign(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._secret, scope.encode() + b"\0" + payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, scope: str, position: list[Any]) -> str:
        payload = msgspec.json.encode(position)
        return f"{_b64(payload)}.{_b64(self._sign(scope, payload))}"

    def decode(self, scope: str, cursor: str | None) -> list[Any] | None:
        """The position in a cursor made by `encode` for this scope; None for no cursor."""
        if cursor is None:
            return None
        try:
            payload_text, signature_text = cursor.split(".")
            payload = _unb64(payload_text)
            if hmac.compare_digest(self._sign(scope, payload), _unb64(signature_text)):
                position = msgspec.json.decode(payload)
                if isinstance(position, list):
                    return position
        except (ValueError, msgspec.DecodeError):
            pass
        raise InvalidFields([FieldError("cursor", "not a cursor this list gave out")])
