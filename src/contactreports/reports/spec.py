"""What a new report asks for, and its checks: a contact's activity over a window of time."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contactreports.catalogue import ACTION_CODES, CATEGORY_ACTIONS
from contactreports.models import (
    OUT_OF_RANGE,
    FieldError,
    InvalidFields,
    ReportSpec,
    Timestamp,
    datetime_to_ms,
    in_range,
    is_plausible_email,
    normalize_email,
)

Email = Annotated[str, msgspec.Meta(max_length=320, examples=["ann@example.com"])]
ActionName = Annotated[str, msgspec.Meta(max_length=100, examples=["email.clicked"])]


class ReportIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    start: Annotated[Timestamp, msgspec.Meta(examples=["2026-01-01T00:00:00Z"])]
    end: Annotated[Timestamp, msgspec.Meta(examples=["2026-04-01T00:00:00Z"])]
    actions: Annotated[
        list[ActionName], msgspec.Meta(max_length=200, examples=[["email.opened", "email.clicked"]])
    ] = []
    categories: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=100)]], msgspec.Meta(max_length=50, examples=[["campaign"]])
    ] = []
    include_archived: bool = False


def report_spec(data: ReportIn, max_window_days: int) -> ReportSpec:
    """Check a search and expand its categories; raises InvalidFields naming every bad field."""
    errors = []
    email = normalize_email(data.email)
    if not is_plausible_email(email):
        errors.append(FieldError("email", "not an email address"))
    actions = set()
    for i, action in enumerate(data.actions):
        if action not in ACTION_CODES:
            errors.append(FieldError(f"actions[{i}]", f"unknown action {action!r}; see GET /api/actions"))
        actions.add(action)
    for i, category in enumerate(data.categories):
        if category not in CATEGORY_ACTIONS:
            errors.append(FieldError(f"categories[{i}]", f"unknown category {category!r}; see GET /api/actions"))
        actions.update(CATEGORY_ACTIONS.get(category, ()))
    if not data.actions and not data.categories:
        errors.append(FieldError("actions", "name at least one action or category"))
    start, end = datetime_to_ms(data.start), datetime_to_ms(data.end)  # what is stored and searched
    out_of_range = [FieldError(name, OUT_OF_RANGE) for name in ("start", "end") if not in_range(getattr(data, name))]
    if out_of_range:
        errors += out_of_range
    elif start >= end:
        errors.append(FieldError("end", "must be after start (to the millisecond)"))
    elif end - start > max_window_days * 86_400_000:
        errors.append(FieldError("end", f"the window may span at most {max_window_days} days"))
    if errors:
        raise InvalidFields(errors)
    return ReportSpec(email, tuple(sorted(actions)), start, end, data.include_archived)
