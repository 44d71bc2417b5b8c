"""The web page's session: the API key, in an encrypted, HTTP-only, SameSite=Strict cookie.

Litestar's client-side session backend (AES-GCM). Its key is a secret kept in the database
(`meta.session_secret`, like the cursor secret), so every API process reads the same cookies
and they survive restarts; no server-side store is needed, and signing in works while Redis is
down. The key is only known once the database is open (in the app's lifespan), so the backend
starts with a random key that `use_secret` replaces before the first request.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from litestar.middleware import DefineMiddleware
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig

SESSION_DAYS = 14


class DatabaseKeyedSessions(ClientSideSessionBackend):
    def __deepcopy__(self, memo: dict) -> DatabaseKeyedSessions:
        # Litestar deep-copies a router's middleware; the copy must be this very backend, whose key
        # the lifespan sets (and AES-GCM keys cannot be copied anyway).
        return self

    def use_secret(self, secret: bytes) -> None:
        self.aesgcm = AESGCM(secret)


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
