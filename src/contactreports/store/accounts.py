"""Accounts and their API keys (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import uuid

import aiosqlite

from contactreports.models import Account, ApiKey, Caller, now_ms
from contactreports.store.database import Database

# What every account's first key is called (and the key each had before accounts had several).
FIRST_KEY_NAME = "default"
# How much of a secret its key shows: `cr_` and 7 random characters (42 of its 256 bits), enough
# to tell an account's keys apart.
PREFIX_LENGTH = 10
KEY_COLUMNS = "pk, id, name, read_only, prefix, created_at"
# A Caller, from api_keys k joined to accounts a (`caller_from_row`).
CALLER_COLUMNS = "a.id, a.name, k.id, k.read_only"


class LastFullAccessKey(Exception):
    """The key is the account's last full-access key (the database refuses to delete it)."""


def hash_token(token: str) -> str:
    """How API keys, webhook tokens and session ids are stored. They are 256-bit random tokens, so
    a fast hash is enough: there is no dictionary to attack."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key() -> str:
    return "cr_" + secrets.token_urlsafe(32)


def caller_from_row(row: tuple | None) -> Caller | None:
    return Caller(Account(row[0], row[1]), row[2], bool(row[3])) if row else None


def _key_from_row(row: tuple) -> ApiKey:
    return ApiKey(pk=row[0], id=row[1], name=row[2], read_only=bool(row[3]), prefix=row[4], created_at=row[5])


async def _insert_key(conn: aiosqlite.Connection, account_id: int, name: str, read_only: bool, secret: str) -> ApiKey:
    rows = await conn.execute_fetchall(
        "INSERT INTO api_keys (id, account_id, name, read_only, secret_hash, prefix, created_at)"
        f" VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {KEY_COLUMNS}",
        (uuid.uuid4().hex, account_id, name, read_only, hash_token(secret), secret[:PREFIX_LENGTH], now_ms()),
    )
    return _key_from_row(rows[0])


async def create_account(db: Database, name: str, api_key: str | None = None) -> tuple[Account, str]:
    """Create an account with its first key (full access); returns it with the key's secret, which
    is shown this once."""
    api_key = api_key or new_api_key()
    async with db.transaction() as conn:
        cursor = await conn.execute("INSERT INTO accounts (name, created_at) VALUES (?, ?)", (name, now_ms()))
        account_id = cursor.lastrowid
        assert account_id is not None
        await _insert_key(conn, account_id, FIRST_KEY_NAME, False, api_key)
    return Account(account_id, name), api_key


async def add_api_key(db: Database, account_id: int, name: str, *, read_only: bool) -> tuple[ApiKey, str]:
    """A new key for the account, with its secret (shown this once)."""
    secret = new_api_key()
    async with db.transaction() as conn:
        key = await _insert_key(conn, account_id, name, read_only, secret)
    return key, secret


async def account_for_key(db: Database, api_key: str) -> Caller | None:
    """Who a secret lets in. Every API request asks this: one point lookup, on the calling thread."""
    row = db.lookup(
        f"SELECT {CALLER_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.secret_hash = ?",
        (hash_token(api_key),),
    )
    return caller_from_row(row)


async def list_api_keys(db: Database, account_id: int, after_pk: int | None, limit: int) -> list[ApiKey]:
    """The account's keys, oldest first, after the key `after_pk` (a page's cursor)."""
    rows = await db.reader.execute_fetchall(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = ? AND pk > ? ORDER BY pk LIMIT ?",
        (account_id, after_pk or 0, limit),
    )
    return [_key_from_row(row) for row in rows]


async def rotate_api_key(db: Database, account_id: int, key_id: str) -> tuple[ApiKey, str] | None:
    """A new secret for the account's key `key_id` (None: it has none such), with the key. The old
    secret stops working at once, and the web sessions signed in with it end."""
    secret = new_api_key()
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            f"UPDATE api_keys SET secret_hash = ?, prefix = ? WHERE account_id = ? AND id = ? RETURNING {KEY_COLUMNS}",
            (hash_token(secret), secret[:PREFIX_LENGTH], account_id, key_id),
        )
        if not rows:
            return None
        key = _key_from_row(rows[0])
        await conn.execute("DELETE FROM web_sessions WHERE key_pk = ?", (key.pk,))
    return key, secret


async def revoke_api_key(db: Database, account_id: int, key_id: str) -> bool:
    """Delete the account's key `key_id`, and so its web sessions; False if it has none such.
    Raises LastFullAccessKey for its last full-access key."""
    async with db.transaction() as conn:
        try:
            cursor = await conn.execute("DELETE FROM api_keys WHERE account_id = ? AND id = ?", (account_id, key_id))
        except sqlite3.IntegrityError as error:
            if "last full-access key" in str(error):  # the trigger api_keys_keep_one_full_access
                raise LastFullAccessKey() from error
            raise
        return cursor.rowcount > 0


async def count_accounts(db: Database) -> int:
    cursor = await db.reader.execute("SELECT count(*) FROM accounts")
    (count,) = await cursor.fetchone()
    return count


async def account_exists(db: Database, account_id: int) -> bool:
    cursor = await db.reader.execute("SELECT 1 FROM accounts WHERE id = ?", (account_id,))
    return await cursor.fetchone() is not None
