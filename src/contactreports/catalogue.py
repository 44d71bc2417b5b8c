"""The action catalogue, as data.

Each action has a small integer code that the event store keeps instead of its name.
Codes are part of the stored data: never change or reuse one; add new actions with new codes.
"""

from __future__ import annotations

import msgspec


class Action(msgspec.Struct, frozen=True):
    name: str
    label: str


class Category(msgspec.Struct, frozen=True):
    name: str
    label: str
    actions: tuple[Action, ...]


# (category, label, ((code, action, label), ...))
_CATALOGUE = (
    (
        "email",
        "Email",
        (
            (1, "sent", "Sent"),
            (2, "delivered", "Delivered"),
            (3, "opened", "Opened"),
            (4, "clicked", "Clicked"),
            (5, "bounced", "Bounced"),
            (6, "unsubscribed", "Unsubscribed"),
            (7, "spam_reported", "Reported as spam"),
            (8, "forwarded", "Forwarded"),
        ),
    ),
    (
        "campaign",
        "Campaign",
        (
            (20, "sent", "Sent"),
            (21, "profile_updated", "Profile updated"),
            (22, "form_submitted", "Form submitted"),
            (23, "subscribed", "Subscribed"),
            (24, "optin_requested", "Opt-in requested"),
            (25, "optin_confirmed", "Opt-in confirmed"),
        ),
    ),
    (
        "sms",
        "SMS",
        (
            (40, "sent", "Sent"),
            (41, "delivered", "Delivered"),
            (42, "clicked", "Clicked"),
            (43, "failed", "Failed"),
            (44, "opted_out", "Opted out"),
        ),
    ),
    (
        "automation",
        "Automation",
        (
            (60, "entered", "Entered"),
            (61, "step_completed", "Step completed"),
            (62, "filtered", "Filtered"),
            (63, "stopped", "Stopped"),
            (64, "expired", "Expired"),
            (65, "cancelled", "Cancelled"),
            (66, "failed", "Failed"),
            (67, "completed", "Completed"),
        ),
    ),
)

CATEGORIES: tuple[Category, ...] = tuple(
    Category(name, label, tuple(Action(f"{name}.{action}", alabel) for _, action, alabel in actions))
    for name, label, actions in _CATALOGUE
)
ACTION_CODES: dict[str, int] = {
    f"{name}.{action}": code for name, _, actions in _CATALOGUE for code, action, _ in actions
}
ACTION_NAMES: dict[int, str] = {code: name for name, code in ACTION_CODES.items()}
CATEGORY_ACTIONS: dict[str, tuple[str, ...]] = {
    category.name: tuple(action.name for action in category.actions) for category in CATEGORIES
}


def category_of(action: str) -> str:
    return action.partition(".")[0]
