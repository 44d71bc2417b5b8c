"""API keys: `GET/POST /api/keys`, `POST /api/keys/{key_id}/rotate`, `DELETE /api/keys/{key_id}`.

Only a full-access key may list or manage keys. A secret is shown once, when made; only its
hash is kept, and a rotated or revoked secret stops working at once, on every API process.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, Parameter

from contactreports.api.auth import SignedIn, require_full_access
from contactreports.api.errors import ProblemError, invalid, not_found, problem_responses
from contactreports.api.parameters import Cursor, Limit
from contactreports.api.schemas import ApiKeyIn, ApiKeyMade, ApiKeyOut, ApiKeyPage
from contactreports.models import ApiKey, FieldError, format_ms, key_name_problem
from contactreports.store.accounts import LastFullAccessKey, add_api_key, list_api_keys, revoke_api_key, rotate_api_key

KeyId = Annotated[str, Parameter(max_length=64, description="The key's `id` (`GET /api/keys`).")]
CREATED = ResponseSpec(ApiKeyMade, description="Created", generate_examples=False)


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(key.id, key.name, key.read_only, key.prefix, format_ms(key.created_at))


def key_made(key: ApiKey, secret: str) -> ApiKeyMade:
    return ApiKeyMade(**msgspec.structs.asdict(key_out(key)), api_key=secret)


def _name(data: ApiKeyIn) -> str:
    """The key's name, trimmed; a 400 for one that is blank or holds control characters."""
    problem = key_name_problem(data.name)
    if problem is not None:
        raise invalid([FieldError("name", problem)])
    return data.name.strip()


class KeyController(Controller):
    path = "/keys"
    tags = ["keys"]
    guards = [require_full_access]

    @get(
        "/",
        operation_id="listApiKeys",
        responses=problem_responses(403),
        summary="API keys, oldest first",
        description=(
            "The account's keys: their ids, names, whether each may only read, and the first characters of "
            "each secret, never the secret itself. `403` with a read-only key."
        ),
    )
    async def index(self, account: SignedIn, state: State, limit: Limit = 50, cursor: Cursor = None) -> ApiKeyPage:
        scope = f"keys:{account.id}"
        position = state.cursors.decode(scope, cursor)
        keys = await list_api_keys(state.db, account.id, position[0] if position else None, limit + 1)
        next_cursor = state.cursors.encode(scope, [keys[limit - 1].pk]) if len(keys) > limit else None
        return ApiKeyPage([key_out(key) for key in keys[:limit]], next_cursor)

    @post(
        "/",
        operation_id="createApiKey",
        status_code=201,
        responses={**problem_responses(403, 413, 503), 201: CREATED},
        summary="Create an API key",
        description=(
            "A new key for the account, full-access or read-only (`read_only`: it may only read, with `GET`). "
            "Its secret, `api_key`, is shown this once: only its hash is kept."
        ),
    )
    async def create(self, data: JSONBody[ApiKeyIn], account: SignedIn, state: State) -> Response[ApiKeyMade]:
        key, secret = await add_api_key(state.db, account.id, _name(data), read_only=data.read_only)
        return Response(key_made(key, secret), status_code=201)

    @post(
        "/{key_id:str}/rotate",
        operation_id="rotateApiKey",
        status_code=200,
        responses=problem_responses(403, 404, 503),
        summary="Rotate an API key",
        description=(
            "A new secret for the key (same id, name and access), shown this once. The old secret stops "
            "working at once, and web page sessions signed in with it end."
        ),
    )
    async def rotate(self, key_id: KeyId, account: SignedIn, state: State) -> ApiKeyMade:
        rotated = await rotate_api_key(state.db, account.id, key_id)
        if rotated is None:
            raise not_found("API key")
        return key_made(*rotated)

    @delete(
        "/{key_id:str}",
        operation_id="revokeApiKey",
        status_code=204,
        responses=problem_responses(403, 404, 409, 503),
        summary="Revoke an API key",
        description=(
            "The key stops working at once, and web page sessions signed in with it end. `409` for the "
            "account's last full-access key: make another one first, so the account is never locked out."
        ),
    )
    async def revoke(self, key_id: KeyId, account: SignedIn, state: State) -> None:
        try:
            revoked = await revoke_api_key(state.db, account.id, key_id)
        except LastFullAccessKey as error:
            raise ProblemError(
                409,
                "This is the account's last full-access key, so it cannot be revoked: nobody could manage the "
                "account's keys any more. Create another full-access key first (or rotate this one).",
            ) from error
        if not revoked:
            raise not_found("API key")
