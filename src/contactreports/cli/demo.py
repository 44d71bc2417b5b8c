"""The demo account `contactreports up` seeds into an empty database.

Ten months of events that end when they are seeded, each at a fixed distance before that moment
(a fixed random seed), so that the README's searches of the last year or the last 30 days find
the same rows on any day; and a fixed key, so its commands work as printed.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import msgspec

from contactreports.catalogue import ACTION_CODES
from contactreports.models import Campaign, NewEvent, datetime_to_ms
from contactreports.store.accounts import create_account
from contactreports.store.campaigns import put_campaign
from contactreports.store.database import Database
from contactreports.store.events import insert_events

DEMO_API_KEY = "cr_demo_local_only_2b7f9d3c"
DEMO_CONTACT = "ann@example.com"
DEMO_SPAN = timedelta(days=304)  # ten months
CONTACTS = 2_000
EVENTS_PER_CONTACT = 25
_BATCH = 10_000
_THEMES = (
    "Spring sale",
    "Product news",
    "Welcome series",
    "Webinar invite",
    "Summer clearance",
    "Loyalty points",
    "Black Friday preview",
    "Customer survey",
    "New arrivals",
    "Re-engagement",
)
# What usually happens to one contact after a send, per channel: (action, chance, details).
_JOURNEYS = {
    "email": (
        ("email.sent", 1.0, None),
        ("email.delivered", 0.97, None),
        ("email.opened", 0.5, "open"),
        ("email.clicked", 0.2, "click"),
        ("email.bounced", 0.03, "bounce"),
        ("email.unsubscribed", 0.02, None),
        ("email.spam_reported", 0.005, None),
        ("email.forwarded", 0.01, None),
    ),
    "sms": (
        ("sms.sent", 1.0, None),
        ("sms.delivered", 0.95, None),
        ("sms.clicked", 0.15, "click"),
        ("sms.failed", 0.03, None),
        ("sms.opted_out", 0.01, None),
    ),
    "automation": (
        ("automation.entered", 1.0, None),
        ("automation.step_completed", 0.8, None),
        ("automation.filtered", 0.1, None),
        ("automation.completed", 0.6, None),
        ("automation.expired", 0.05, None),
    ),
}
_PROFILE_ACTIONS = (
    "campaign.profile_updated",
    "campaign.form_submitted",
    "campaign.subscribed",
    "campaign.optin_requested",
    "campaign.optin_confirmed",
)


def demo_search(now: datetime) -> dict[str, object]:
    """The README tour's search: every email and campaign action of the demo contact in the year up to
    the end of `now`'s day (UTC), which holds the demo's events when it was seeded before `now`."""
    tomorrow = now.astimezone(UTC).date() + timedelta(days=1)
    return {
        "email": DEMO_CONTACT,
        "categories": ["email", "campaign"],
        "start": f"{tomorrow - timedelta(days=366)}T00:00:00Z",
        "end": f"{tomorrow}T00:00:00Z",
    }


def _campaigns(rng: random.Random, start: int, end: int) -> list[Campaign]:
    campaigns = []
    for number in range(40):
        channel = rng.choice(("email", "email", "email", "sms", "automation"))
        sent_at = rng.randrange(start, end - 7 * 86_400_000)
        name = f"{_THEMES[number % len(_THEMES)]} #{number // len(_THEMES) + 1}"
        # The oldest fifth are archived, as a real account's old campaigns are.
        archived = sent_at < start + (end - start) // 5
        campaigns.append(Campaign(f"c{number:03d}", name, channel, sent_at, archived))
    return campaigns


def _details(kind: str | None, rng: random.Random, campaign: Campaign) -> bytes | None:
    if kind == "click":
        return msgspec.json.encode(
            {
                "url": f"https://shop.example.com/{campaign.id}?utm_source={campaign.channel}",
                "user_agent": rng.choice(("Mozilla/5.0 (iPhone)", "Mozilla/5.0 (Windows NT 10.0)")),
            }
        )
    if kind == "open":
        return msgspec.json.encode({"machine_open": rng.random() < 0.3})
    if kind == "bounce":
        return msgspec.json.encode({"bounce_type": rng.choice(("hard", "soft")), "smtp_code": rng.choice((550, 421))})
    return None


def _contact_events(
    email: str, sends: int, rng: random.Random, campaigns: list[Campaign], start: int, end: int
) -> list[NewEvent]:
    events = []
    for campaign in rng.sample(campaigns, sends):
        moment = campaign.sent_at or start
        for action, chance, kind in _JOURNEYS[campaign.channel]:
            if rng.random() < chance:
                moment += rng.randrange(1_000, 36 * 3_600_000)
                events.append(
                    NewEvent(
                        None,
                        email,
                        ACTION_CODES[action],
                        min(moment, end - 1),
                        campaign.id,
                        _details(kind, rng, campaign),
                    )
                )
    for _ in range(rng.randrange(0, 4)):  # profile changes belong to no campaign
        events.append(
            NewEvent(
                None,
                email,
                ACTION_CODES[rng.choice(_PROFILE_ACTIONS)],
                rng.randrange(start, end),
                None,
                msgspec.json.encode({"source": rng.choice(("preference centre", "signup form"))}),
            )
        )
    return events


async def seed_demo(db: Database, now: datetime | None = None) -> int:
    """Create the demo account with campaigns and events in the DEMO_SPAN before `now` (default: the
    current time); returns the number of events."""
    end = datetime_to_ms(now or datetime.now(UTC))
    start = end - int(DEMO_SPAN.total_seconds() * 1000)
    rng = random.Random(2026)
    account, _ = await create_account(db, "Demo", DEMO_API_KEY)
    campaigns = _campaigns(rng, start, end)
    for campaign in campaigns:
        await put_campaign(db, account.id, campaign)
    events = _contact_events(DEMO_CONTACT, len(campaigns), rng, campaigns, start, end)
    for number in range(CONTACTS):
        sends = max(1, min(len(campaigns), int(rng.paretovariate(1.5) * EVENTS_PER_CONTACT / 6)))
        events += _contact_events(f"contact{number}@example.org", sends, rng, campaigns, start, end)
    for first in range(0, len(events), _BATCH):
        await insert_events(db, account.id, events[first : first + _BATCH])
    return len(events)
