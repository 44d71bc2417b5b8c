"""Accounts and their API keys (stored as SHA-256 hashes, never in clear)."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from contactreports.models import Account, ApiKey, Caller, now_ms
from contactreports.store.database import Connection, ConstraintViolation, Database, Row

# What every account's first key is called (and the key each had before accounts had several).
FIRST_KEY_NAME = "default"
# How much of a secret its key shows: `cr_` and 7 random characters (42 of its 256 bits), enough
# to tell an account's keys apart.
PREFIX_LENGTH = 10
KEY_COLUMNS = "pk, id, name, read_only, prefix, created_at"
# A Caller, from api_keys k joined to accounts a (`caller_from_row`).
CALLER_COLUMNS = "a.id AS account_id, a.name AS account_name, k.id AS key_id, k.read_only"


class LastFullAccessKey(Exception):
    """The key is the account's last full-access key (the database refuses to delete it)."""


def hash_token(token: str) -> str:
    """How API keys, webhook tokens and session ids are stored. They are 256-bit random tokens, so
    a fast hash is enough: there is no dictionary to attack."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key() -> str:
    return "cr_" + secrets.token_urlsafe(32)


def caller_from_row(row: Row | None) -> Caller | None:
    if row is None:
        return None
    return Caller(Account(row["account_id"], row["account_name"]), row["key_id"], bool(row["read_only"]))


def _key_from_row(row: Row) -> ApiKey:
    return ApiKey(
        pk=row["pk"],
        id=row["id"],
        name=row["name"],
        read_only=bool(row["read_only"]),
        prefix=row["prefix"],
        created_at=row["created_at"],
    )


async def _insert_key(conn: Connection, account_id: int, name: str, read_only: bool, secret: str) -> ApiKey:
    row = await conn.fetch_one(
        "INSERT INTO api_keys (id, account_id, name, read_only, secret_hash, prefix, created_at)"
        " VALUES (:id, :account_id, :name, :read_only, :secret_hash, :prefix, :created_at)"
        f" RETURNING {KEY_COLUMNS}",
        {
            "id": uuid.uuid4().hex,
            "account_id": account_id,
            "name": name,
            "read_only": read_only,
            "secret_hash": hash_token(secret),
            "prefix": secret[:PREFIX_LENGTH],
            "created_at": now_ms(),
        },
    )
    assert row is not None
    return _key_from_row(row)


async def create_account(db: Database, name: str, api_key: str | None = None) -> tuple[Account, str]:
    """Create an account with its first key (full access); returns it with the key's secret, which
    is shown this once."""
    api_key = api_key or new_api_key()
    async with db.transaction() as conn:
        account_id = await conn.fetch_value(
            "INSERT INTO accounts (name, created_at) VALUES (:name, :created_at) RETURNING id",
            {"name": name, "created_at": now_ms()},
        )
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
    row = await db.lookup(
        f"SELECT {CALLER_COLUMNS} FROM api_keys k JOIN accounts a ON a.id = k.account_id"
        " WHERE k.secret_hash = :secret_hash",
        {"secret_hash": hash_token(api_key)},
    )
    return caller_from_row(row)


async def list_api_keys(db: Database, account_id: int, after_pk: int | None, limit: int) -> list[ApiKey]:
    """The account's keys, oldest first, after the key `after_pk` (a page's cursor)."""
    rows = await db.fetch(
        f"SELECT {KEY_COLUMNS} FROM api_keys WHERE account_id = :account_id AND pk > :after_pk"
        " ORDER BY pk LIMIT :limit",
        {"account_id": account_id, "after_pk": after_pk or 0, "limit": limit},
    )
    return [_key_from_row(row) for row in rows]


async def rotate_api_key(db: Database, account_id: int, key_id: str) -> tuple[ApiKey, str] | None:
    """A new secret for the account's key `key_id` (None: it has none such), with the key. The old
    secret stops working at once, and the web sessions signed in with it end."""
    secret = new_api_key()
    async with db.transaction() as conn:
        row = await conn.fetch_one(
            "UPDATE api_keys SET secret_hash = :secret_hash, prefix = :prefix"
            f" WHERE account_id = :account_id AND id = :key_id RETURNING {KEY_COLUMNS}",
            {
                "secret_hash": hash_token(secret),
                "prefix": secret[:PREFIX_LENGTH],
                "account_id": account_id,
                "key_id": key_id,
            },
        )
        if row is None:
            return None
        key = _key_from_row(row)
        await conn.execute("DELETE FROM web_sessions WHERE key_pk = :key_pk", {"key_pk": key.pk})
    return key, secret


async def revoke_api_key(db: Database, account_id: int, key_id: str) -> bool:
    """Delete the account's key `key_id`, and so its web sessions; False if it has none such.
    Raises LastFullAccessKey for its last full-access key."""
    async with db.transaction() as conn:
        try:
            deleted = await conn.fetch(
                "DELETE FROM api_keys WHERE account_id = :account_id AND id = :key_id RETURNING 1",
                {"account_id": account_id, "key_id": key_id},
            )
        except ConstraintViolation as error:
            if "last full-access key" in str(error):  # the trigger api_keys_keep_one_full_access
                raise LastFullAccessKey() from error
            raise
        return bool(deleted)


async def count_accounts(db: Database) -> int:
    return await db.fetch_value("SELECT count(*) FROM accounts")


async def account_exists(db: Database, account_id: int) -> bool:
    return await db.fetch_one("SELECT 1 FROM accounts WHERE id = :account_id", {"account_id": account_id}) is not None
