"""API keys: `Authorization: Bearer <api_key>` names exactly one account, and says whether it may
change anything.

A guard on the /api router checks the key for every endpoint below it (so no handler can
forget): a read-only key gets only the methods that read. Handlers that need the account
receive it as the `account` dependency.
"""

from __future__ import annotations

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler

from contactreports.api.errors import ProblemError
from contactreports.models import Account, Caller
from contactreports.store.accounts import account_for_key

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# The methods that change nothing.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY = "This API key is read-only: it may only read (GET). Use a full-access key to change anything."
READ_ONLY_KEYS = "This API key is read-only: only a full-access key may list or manage API keys."
# A handler's `account`: the one its router's `account` dependency provides (the API key's, or
# the web page session's).
SignedIn = NamedDependency[Account]


async def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    scheme, _, api_key = connection.headers.get("authorization", "").partition(" ")
    api_key = api_key.strip()
    if scheme.lower() != "bearer" or not api_key:
        raise ProblemError(401, "Send your API key as `Authorization: Bearer <api_key>`.", headers=_CHALLENGE)
    caller = await account_for_key(connection.app.state.db, api_key)
    if caller is None:
        raise ProblemError(401, "Unknown API key.", headers=_CHALLENGE)
    if caller.read_only and connection.scope["method"] not in SAFE_METHODS:
        raise ProblemError(403, READ_ONLY)
    connection.state.caller = caller
    connection.state.account = caller.account


async def require_full_access(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A guard (after `require_api_key`) for what a read-only key may not even read: the keys."""
    caller: Caller = connection.state.caller
    if caller.read_only:
        raise ProblemError(403, READ_ONLY_KEYS)


async def provide_account(request: Request) -> Account:
    return request.state.account
