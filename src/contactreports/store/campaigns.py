"""Campaigns. Archiving one moves its events to `archived_events`; un-archiving moves them back."""

from __future__ import annotations

from contactreports.models import Campaign
from contactreports.store.database import Database, select_in

_COLUMNS = "id, name, channel, sent_at, archived"


def _campaign(row: tuple) -> Campaign:
    return Campaign(row[0], row[1], row[2], row[3], bool(row[4]))


async def put_campaign(db: Database, account_id: int, campaign: Campaign) -> bool:
    """Create or replace a campaign; True when it is new."""
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "SELECT pk, archived FROM campaigns WHERE account_id = ? AND id = ?", (account_id, campaign.id)
        )
        values = (campaign.name, campaign.channel, campaign.sent_at, int(campaign.archived))
        if not rows:
            await conn.execute(
                "INSERT INTO campaigns (account_id, id, name, channel, sent_at, archived) VALUES (?, ?, ?, ?, ?, ?)",
                (account_id, campaign.id, *values),
            )
            return True
        pk, was_archived = rows[0]
        await conn.execute(
            "UPDATE campaigns SET name = ?, channel = ?, sent_at = ?, archived = ? WHERE pk = ?", (*values, pk)
        )
        if campaign.archived != bool(was_archived):
            source, target = ("events", "archived_events") if campaign.archived else ("archived_events", "events")
            await conn.execute(
                f"INSERT INTO {target} (account_id, email, occurred_at, seq, action, campaign_pk, details)"
                f" SELECT account_id, email, occurred_at, seq, action, campaign_pk, details"
                f" FROM {source} WHERE campaign_pk = ?",
                (pk,),
            )
            await conn.execute(f"DELETE FROM {source} WHERE campaign_pk = ?", (pk,))
        return False


async def get_campaign(db: Database, account_id: int, campaign_id: str) -> Campaign | None:
    rows = await db.reader.execute_fetchall(
        f"SELECT {_COLUMNS} FROM campaigns WHERE account_id = ? AND id = ?", (account_id, campaign_id)
    )
    return _campaign(rows[0]) if rows else None


async def list_campaigns(db: Database, account_id: int, after_id: str | None, limit: int) -> list[Campaign]:
    """Campaigns ordered by id, those after `after_id`."""
    rows = await db.reader.execute_fetchall(
        f"SELECT {_COLUMNS} FROM campaigns WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
        (account_id, after_id or "", limit),
    )
    return [_campaign(row) for row in rows]


async def known_campaign_ids(db: Database, account_id: int, ids: set[str]) -> set[str]:
    """Those of `ids` that are campaigns of the account."""
    rows = await select_in(
        db.reader,
        "SELECT id FROM campaigns WHERE account_id = ? AND id IN ({placeholders})",
        (account_id,),
        sorted(ids),
    )
    return {row[0] for row in rows}
