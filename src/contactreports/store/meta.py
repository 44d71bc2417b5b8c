"""Values the store keeps for the whole installation."""

from __future__ import annotations

from contactreports.store.database import Database


async def _secret(db: Database, key: str) -> bytes:
    return bytes.fromhex(await db.fetch_value("SELECT value FROM meta WHERE key = :key", {"key": key}))


async def cursor_secret(db: Database) -> bytes:
    return await _secret(db, "cursor_secret")


async def session_secret(db: Database) -> bytes:
    """The web page's session cookie key (32 bytes, AES-GCM)."""
    return await _secret(db, "session_secret")


async def schema_version(db: Database) -> int:
    """The last migration applied (opening the store applies every pending one)."""
    return await db.fetch_value("SELECT max(version) FROM schema_migrations")
