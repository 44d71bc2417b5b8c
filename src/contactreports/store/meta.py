"""Values the store keeps for the whole installation."""

from __future__ import annotations

from contactreports.store.database import Database


async def cursor_secret(db: Database) -> bytes:
    rows = await db.reader.execute_fetchall("SELECT value FROM meta WHERE key = 'cursor_secret'")
    return bytes.fromhex(rows[0][0])
