"""Campaigns. Archiving one moves its events to `archived_events`; un-archiving moves them back."""

from __future__ import annotations

from contactreports.models import Campaign
from contactreports.store.database import Database, Row
from contactreports.store.events import EVENT_COLUMNS

_COLUMNS = "id, name, channel, sent_at, archived"


def _campaign(row: Row) -> Campaign:
    return Campaign(row["id"], row["name"], row["channel"], row["sent_at"], bool(row["archived"]))


async def put_campaign(db: Database, account_id: int, campaign: Campaign) -> bool:
    """Create or replace a campaign; True when it is new."""
    values = {
        "account_id": account_id,
        "id": campaign.id,
        "name": campaign.name,
        "channel": campaign.channel,
        "sent_at": campaign.sent_at,
        "archived": campaign.archived,
    }
    async with db.transaction() as conn:
        # Insert first: of two processes creating the campaign at once, the unique key lets one.
        created = await conn.fetch_one(
            "INSERT INTO campaigns (account_id, id, name, channel, sent_at, archived)"
            " VALUES (:account_id, :id, :name, :channel, :sent_at, :archived)"
            " ON CONFLICT (account_id, id) DO NOTHING RETURNING pk",
            values,
        )
        if created is not None:
            return True
        # Locked until the transaction ends: ingest reads the archived flag under a share lock, so
        # no event lands in the table its events are moving out of.
        old = await conn.fetch_one(
            f"SELECT pk, archived FROM campaigns WHERE account_id = :account_id AND id = :id{conn.dialect.for_update}",
            values,
        )
        await conn.execute(
            "UPDATE campaigns SET name = :name, channel = :channel, sent_at = :sent_at, archived = :archived"
            " WHERE account_id = :account_id AND pk = :pk",
            {**values, "pk": old["pk"]},
        )
        if campaign.archived != bool(old["archived"]):
            source, target = ("events", "archived_events") if campaign.archived else ("archived_events", "events")
            columns = ", ".join(EVENT_COLUMNS)
            await conn.execute(
                f"INSERT INTO {target} ({columns}) SELECT {columns}"
                f" FROM {source} WHERE account_id = :account_id AND campaign_pk = :pk",
                {"account_id": account_id, "pk": old["pk"]},
            )
            await conn.execute(
                f"DELETE FROM {source} WHERE account_id = :account_id AND campaign_pk = :pk",
                {"account_id": account_id, "pk": old["pk"]},
            )
        return False


async def get_campaign(db: Database, account_id: int, campaign_id: str) -> Campaign | None:
    row = await db.fetch_one(
        f"SELECT {_COLUMNS} FROM campaigns WHERE account_id = :account_id AND id = :id",
        {"account_id": account_id, "id": campaign_id},
    )
    return _campaign(row) if row else None


async def list_campaigns(db: Database, account_id: int, after_id: str | None, limit: int) -> list[Campaign]:
    """Campaigns ordered by id, those after `after_id`."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM campaigns WHERE account_id = :account_id AND id > :after_id ORDER BY id LIMIT :limit",
        {"account_id": account_id, "after_id": after_id or "", "limit": limit},
    )
    return [_campaign(row) for row in rows]


async def known_campaign_ids(db: Database, account_id: int, ids: set[str]) -> set[str]:
    """Those of `ids` that are campaigns of the account."""
    rows = await db.fetch_any_of(
        f"SELECT id FROM campaigns WHERE account_id = :account_id AND {db.dialect.any_of('id', 'ids')}",
        {"account_id": account_id},
        "ids",
        sorted(ids),
    )
    return {row["id"] for row in rows}
