"""The web page's session: the API key, in an encrypted, HTTP-only, SameSite=Strict cookie.

Litestar's client-side session backend (AES-GCM). Its key is a secret kept in the database
(`meta.session_secret`, like the cursor secret), so every API process reads the same cookies
and they survive restarts; no server-side store is needed, and signing in works while Redis is
down. The key is only known once the database is open (in the app's lifespan), so the backend
starts with a random key that `use_secret` replaces before the first request.
"""

from __future__ import annotations

import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar import Request
from litestar.middleware import DefineMiddleware
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig

from contactreports.models import Account
from contactreports.store.accounts import account_for_key

SESSION_DAYS = 14


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
    """The request has no session, or its API key no longer names an account: the sign-in form."""


async def signed_in_account(request: Request) -> Account | None:
    """The session's account; a session whose key no longer names one is cleared."""
    api_key = request.session.get("api_key")
    if not api_key:
        return None
    account = await account_for_key(request.app.state.db, api_key)
    if account is None:
        request.clear_session()
    return account


async def provide_account(request: Request) -> Account:
    """The `account` of every page but the sign-in form's: signed out, the page redirects there."""
    account = await signed_in_account(request)
    if account is None:
        raise SignedOut()
    return account
