"""The web page's sessions: a random id (in the page's cookie) names the API key signed in with.

Only the id's hash is kept, as for API keys. A session ends when signed out, when its key is
revoked (the row goes with the key) or rotated (`rotate_api_key`), and when it expires.
"""

from __future__ import annotations

import secrets

from contactreports.models import Caller, now_ms
from contactreports.store.accounts import CALLER_COLUMNS, caller_from_row, hash_token
from contactreports.store.database import Database


async def start_session(db: Database, api_key: str, lifetime_ms: int, replacing: str | None = None) -> str | None:
    """A new session signed in with `api_key` (None if it is no key's secret), and its id: the
    session `replacing` (the browser's previous one) ends. Sessions past their expiry go too."""
    session_id, now = secrets.token_urlsafe(32), now_ms()
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM web_sessions WHERE expires_at <= :now", {"now": now})
        if replacing is not None:
            await conn.execute("DELETE FROM web_sessions WHERE id_hash = :id_hash", {"id_hash": hash_token(replacing)})
        # The key found by its secret in this very statement: a secret rotated away starts no session.
        started = await conn.fetch(
            "INSERT INTO web_sessions (id_hash, key_pk, expires_at)"
            " SELECT :id_hash, pk, :expires_at FROM api_keys WHERE secret_hash = :secret_hash RETURNING 1",
            {"id_hash": hash_token(session_id), "expires_at": now + lifetime_ms, "secret_hash": hash_token(api_key)},
        )
        return session_id if started else None


async def caller_for_session(db: Database, session_id: str) -> Caller | None:
    """Who the session is signed in as; None once it has ended. Every page asks: a point lookup."""
    row = await db.lookup(
        f"SELECT {CALLER_COLUMNS} FROM web_sessions s JOIN api_keys k ON k.pk = s.key_pk"
        " JOIN accounts a ON a.id = k.account_id WHERE s.id_hash = :id_hash AND s.expires_at > :now",
        {"id_hash": hash_token(session_id), "now": now_ms()},
    )
    return caller_from_row(row)


async def end_session(db: Database, session_id: str) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM web_sessions WHERE id_hash = :id_hash", {"id_hash": hash_token(session_id)})
