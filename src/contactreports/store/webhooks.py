"""Webhook tokens (one per account, stored hashed) and each provider's secret for an account."""

from __future__ import annotations

import secrets

from contactreports.models import Account, now_ms
from contactreports.store.accounts import hash_token
from contactreports.store.database import Database


def new_webhook_token() -> str:
    # URL-safe: it is a path segment of the webhook URL.
    return "wh_" + secrets.token_urlsafe(32)


async def rotate_webhook_token(db: Database, account_id: int) -> tuple[str, int]:
    """A new token for the account (shown this once) and when it was made; the old one stops working at once."""
    token, created_at = new_webhook_token(), now_ms()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO webhook_tokens (account_id, token_hash, created_at)"
            " VALUES (:account_id, :token_hash, :created_at) ON CONFLICT (account_id)"
            " DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at",
            {"account_id": account_id, "token_hash": hash_token(token), "created_at": created_at},
        )
    return token, created_at


async def account_for_webhook_token(db: Database, token: str) -> Account | None:
    # Every webhook delivery asks this: a point lookup, like account_for_key.
    row = await db.lookup(
        "SELECT a.id, a.name FROM webhook_tokens t JOIN accounts a ON a.id = t.account_id"
        " WHERE t.token_hash = :token_hash",
        {"token_hash": hash_token(token)},
    )
    return Account(row["id"], row["name"]) if row else None


async def webhook_token_created_at(db: Database, account_id: int) -> int | None:
    """When the account's token was made; None when it has none."""
    return await db.fetch_value(
        "SELECT created_at FROM webhook_tokens WHERE account_id = :account_id", {"account_id": account_id}
    )


async def set_webhook_secret(db: Database, account_id: int, provider: str, secret: str) -> int:
    """Set (or replace) the account's secret for `provider`; returns when, in ms."""
    updated_at = now_ms()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO webhook_secrets (account_id, provider, secret, updated_at)"
            " VALUES (:account_id, :provider, :secret, :updated_at) ON CONFLICT (account_id, provider)"
            " DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at",
            {"account_id": account_id, "provider": provider, "secret": secret, "updated_at": updated_at},
        )
    return updated_at


async def delete_webhook_secret(db: Database, account_id: int, provider: str) -> bool:
    """Forget the account's secret for `provider`; True if it had one."""
    async with db.transaction() as conn:
        deleted = await conn.fetch(
            "DELETE FROM webhook_secrets WHERE account_id = :account_id AND provider = :provider RETURNING 1",
            {"account_id": account_id, "provider": provider},
        )
        return bool(deleted)


async def webhook_secrets_updated(db: Database, account_id: int) -> dict[str, int]:
    """{provider: when its secret was last set} for the providers the account has a secret for."""
    rows = await db.fetch(
        "SELECT provider, updated_at FROM webhook_secrets WHERE account_id = :account_id", {"account_id": account_id}
    )
    return {row["provider"]: row["updated_at"] for row in rows}


async def get_webhook_secret(db: Database, account_id: int, provider: str) -> str | None:
    # Every webhook delivery asks this too: a point lookup by the table's key.
    row = await db.lookup(
        "SELECT secret FROM webhook_secrets WHERE account_id = :account_id AND provider = :provider",
        {"account_id": account_id, "provider": provider},
    )
    return row["secret"] if row else None
