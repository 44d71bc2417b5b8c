"""The web page's session: a random session id, in an encrypted, HTTP-only, SameSite=Strict cookie,
naming a session kept in the database (store/sessions.py).

The session itself is server-side, so signing out ends it on every API process at once (a
copied cookie stops working), and revoking or rotating the API key it was signed in with ends
it too. The cookie is Litestar's client-side session backend (AES-GCM), which also carries the
one-off notice the next page shows. Its key is a secret kept in the database
(`meta.session_secret`, like the cursor secret), so every API process reads the same cookies
and they survive restarts; signing in needs SQLite only, not Redis. The key is only known once
the database is open (in the app's lifespan), so the backend starts with a random key that
`use_secret` replaces before the first request.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig

from contactreports.api.errors import ProblemError
from contactreports.models import Account, Caller
from contactreports.store.sessions import caller_for_session, end_session, start_session

SESSION_DAYS = 14
READ_ONLY_PAGE = "You signed in with a read-only API key: it shows reports, but cannot create, rerun or delete them."
_NOT_LOOKED_UP = object()
# A page's `caller`: who its session is signed in as (the `account` is theirs).
SignedInCaller = NamedDependency[Caller]


class DatabaseKeyedSessions(ClientSideSessionBackend):
    def __deepcopy__(self, memo: dict) -> DatabaseKeyedSessions:
        # Litestar deep-copies a router's middleware; the copy must be this very backend, whose key
        # the lifespan sets (and AES-GCM keys cannot be copied anyway).
        return self

    def use_secret(self, secret: bytes) -> None:
        self.aesgcm = AESGCM(secret)

    def load_data(self, data: list[bytes]) -> dict[str, Any]:
        # Litestar lets only a bad tag or bad base64 through as "no session"; a cookie edited to
        # hold other bytes (no JSON, no expiry) would raise. Any cookie we cannot read is none.
        try:
            return super().load_data(data)
        except Exception:
            return {}


def session_backend(*, secure: bool) -> DatabaseKeyedSessions:
    config = CookieBackendConfig(
        secret=os.urandom(32),
        key="contactreports_session",
        max_age=SESSION_DAYS * 86_400,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return DatabaseKeyedSessions(config=config)


def session_middleware(backend: DatabaseKeyedSessions) -> DefineMiddleware:
    return DefineMiddleware(SessionMiddleware, backend=backend)


class SignedOut(Exception):
    """The request has no session, or its session has ended: the sign-in form."""


def _session_id(connection: ASGIConnection) -> str | None:
    session_id = connection.session.get("session_id")
    return session_id if isinstance(session_id, str) else None


async def sign_in(request: Request, api_key: str) -> bool:
    """Start a session with `api_key` in place of the browser's; False if it is no key."""
    lifetime_ms = SESSION_DAYS * 86_400_000
    session_id = await start_session(request.app.state.db, api_key, lifetime_ms, replacing=_session_id(request))
    if session_id is None:
        return False
    request.set_session({"session_id": session_id})
    return True


async def sign_out(request: Request) -> None:
    """End the browser's session, here and for every copy of its cookie."""
    session_id = _session_id(request)
    if session_id is not None:
        await end_session(request.app.state.db, session_id)
    request.clear_session()


async def signed_in(connection: ASGIConnection) -> Caller | None:
    """Who the session is signed in as (looked up once a request); a session that has ended is cleared."""
    caller = connection.state.get("caller", _NOT_LOOKED_UP)
    if caller is _NOT_LOOKED_UP:
        session_id = _session_id(connection)
        caller = None if session_id is None else await caller_for_session(connection.app.state.db, session_id)
        if caller is None and session_id is not None:
            connection.clear_session()
        connection.state.caller = caller
    return caller


async def provide_caller(request: Request) -> Caller:
    """The `caller` of every page but the sign-in form's: signed out, the page redirects there."""
    caller = await signed_in(request)
    if caller is None:
        raise SignedOut()
    return caller


async def provide_account(request: Request) -> Account:
    """The `account` of every page but the sign-in form's, likewise."""
    return (await provide_caller(request)).account


async def full_access_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A guard for the pages that change reports: a session with a read-only key gets a 403 page."""
    caller = await signed_in(connection)
    if caller is not None and caller.read_only:
        raise ProblemError(403, READ_ONLY_PAGE)
