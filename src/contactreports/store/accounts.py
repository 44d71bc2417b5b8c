"""Accounts and their API keys (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

import hashlib
import secrets

from contactreports.models import Account, now_ms
from contactreports.store.database import Database


def hash_token(token: str) -> str:
    """How API keys and webhook tokens are stored. They are 256-bit random tokens, so a fast
    hash is enough: there is no dictionary to attack."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key() -> str:
    return "cr_" + secrets.token_urlsafe(32)


async def create_account(db: Database, name: str, api_key: str | None = None) -> tuple[Account, str]:
    """Create an account; returns it with its API key, which is shown this once."""
    api_key = api_key or new_api_key()
    async with db.transaction() as conn:
        cursor = await conn.execute(
            "INSERT INTO accounts (name, api_key_hash, created_at) VALUES (?, ?, ?)",
            (name, hash_token(api_key), now_ms()),
        )
        account_id = cursor.lastrowid
    assert account_id is not None
    return Account(account_id, name), api_key


async def account_for_key(db: Database, api_key: str) -> Account | None:
    row = db.lookup("SELECT id, name FROM accounts WHERE api_key_hash = ?", (hash_token(api_key),))
    return Account(row[0], row[1]) if row else None


async def count_accounts(db: Database) -> int:
    cursor = await db.reader.execute("SELECT count(*) FROM accounts")
    (count,) = await cursor.fetchone()
    return count


async def account_exists(db: Database, account_id: int) -> bool:
    cursor = await db.reader.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,))
    return await cursor.fetchone() is not None
