"""API keys: `Authorization: Bearer <api_key>` names exactly one account.

A guard on the /api router checks the key for every endpoint below it (so no handler can
forget), and handlers that need the account receive it as the `account` dependency.
"""

from __future__ import annotations

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler

from contactreports.api.errors import ProblemError
from contactreports.models import Account
from contactreports.store.accounts import account_for_key

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# A handler's `account`: the one its router's `account` dependency provides (the API key's, or
# the web page session's).
SignedIn = NamedDependency[Account]


async def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    scheme, _, api_key = connection.headers.get("authorization", "").partition(" ")
    api_key = api_key.strip()
    if scheme.lower() != "bearer" or not api_key:
        raise ProblemError(401, "Send your API key as `Authorization: Bearer <api_key>`.", headers=_CHALLENGE)
    account = await account_for_key(connection.app.state.db, api_key)
    if account is None:
        raise ProblemError(401, "Unknown API key.", headers=_CHALLENGE)
    connection.state.account = account


async def provide_account(request: Request) -> Account:
    return request.state.account
