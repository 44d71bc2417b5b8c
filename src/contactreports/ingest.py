"""Events as clients send them, and the checks every way in (API, CLI import) applies."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from contactreports.catalogue import ACTION_CODES
from contactreports.models import (
    CONTROL_CHARACTERS,
    OUT_OF_RANGE,
    FieldError,
    NewEvent,
    Timestamp,
    control_characters_in,
    datetime_to_ms,
    in_range,
    is_plausible_email,
    normalize_email,
)

# The longest campaign id an event may name (webhook adapters check the ids they make against it).
MAX_CAMPAIGN_ID = 200


class EventIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320, examples=["ann@example.com"])]
    action: Annotated[str, msgspec.Meta(max_length=100, examples=["email.clicked"])]
    occurred_at: Annotated[Timestamp, msgspec.Meta(examples=["2026-03-01T09:30:00Z"])]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["evt-1"])] | None = None
    campaign_id: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CAMPAIGN_ID, examples=["spring-sale"])] | None
    ) = None
    details: Annotated[dict[str, Any], msgspec.Meta(examples=[{"url": "https://example.com/spring"}])] | None = None


class InvalidEvents(Exception):
    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors[:5]))
        self.errors = errors


_decode_array = msgspec.json.Decoder(list[EventIn]).decode
_decode_one = msgspec.json.Decoder(EventIn).decode
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
# msgspec 0.23 raises DecodeError("Invalid UTF-8 encoded string") where older releases raised
# UnicodeDecodeError: its message is all that tells it from JSON that is malformed.
_INVALID_UTF8 = re.compile(r"^Invalid UTF-8\b")
# msgspec names a missing or unknown field in its message: "Object missing required field `email`".
NAMED_FIELD = re.compile(r"field `([^`]+)`")


def field_error(error: msgspec.ValidationError, prefix: str = "") -> FieldError:
    """`Expected str, got int - at $[3].email` -> FieldError("[3].email", "Expected str, got int")."""
    match = _AT_PATH.match(str(error))
    assert match is not None  # the pattern matches any text
    path = prefix + (match["path"] or "")
    named = NAMED_FIELD.search(match["message"])
    if named:
        path = f"{path}.{named[1]}"
    return FieldError(path.lstrip(".") or "body", match["message"])


def undecodable(error: Exception) -> str:
    """What is wrong with a body the JSON decoder could not read at all."""
    if isinstance(error, UnicodeDecodeError) or _INVALID_UTF8.match(str(error)):
        return "not valid UTF-8"
    if isinstance(error, RecursionError):
        return "JSON nested too deeply"
    return f"not valid JSON: {error}"


# What a JSON decoder raises for bytes that are not JSON it can read.
UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def decode_array(body: bytes) -> list[EventIn]:
    try:
        return _decode_array(body)
    except msgspec.ValidationError as error:
        raise InvalidEvents([field_error(error)]) from error
    except UNDECODABLE as error:
        raise InvalidEvents([FieldError("body", undecodable(error))]) from error


def decode_line(index: int, line: bytes) -> EventIn:
    """One NDJSON line; `index` names it in error messages (its position in a batch, or a file's line)."""
    try:
        return _decode_one(line)
    except msgspec.ValidationError as error:
        raise InvalidEvents([field_error(error, prefix=f"[{index}]")]) from error
    except UNDECODABLE as error:
        raise InvalidEvents([FieldError(f"[{index}]", undecodable(error))]) from error


def too_many_events(count: int, limit: int) -> FieldError | None:
    """What is wrong with a request of `count` events when one may hold `limit`: every way in
    that takes a batch (`POST /api/events`, webhook deliveries) answers it alike."""
    if count <= limit:
        return None
    return FieldError("body", f"at most {limit:,} events per request, got {count:,}")


def to_new_events(
    events: list[EventIn], max_details_bytes: int, positions: Sequence[int] | None = None
) -> list[NewEvent]:
    """Normalise the emails and check what the types cannot; raises InvalidEvents naming each bad field
    (by its index, or by its entry in `positions`, as check_events does)."""
    valid, errors = check_events(events, max_details_bytes, positions)
    if errors:
        raise InvalidEvents(errors)
    return valid


def check_events(
    events: Sequence[EventIn], max_details_bytes: int, positions: Sequence[int] | None = None
) -> tuple[list[NewEvent], list[FieldError]]:
    """The events that pass every check, ready to store, and what is wrong with the others.

    Errors name an event by its index in `events`, or by its entry in `positions` when given
    (where the events came from, when some were already set aside).
    """
    valid, errors = [], []
    # A batch names few campaigns, many times each: check each one once.
    bad_campaigns = {c for c in {event.campaign_id for event in events} if control_characters_in(c)}
    for i, event in enumerate(events):
        at = i if positions is None else positions[i]
        found = len(errors)
        email = normalize_email(event.email)
        if not is_plausible_email(email):
            errors.append(FieldError(f"[{at}].email", "not an email address"))
        if not in_range(event.occurred_at):
            errors.append(FieldError(f"[{at}].occurred_at", OUT_OF_RANGE))
        if control_characters_in(event.id):
            errors.append(FieldError(f"[{at}].id", CONTROL_CHARACTERS))
        if event.campaign_id in bad_campaigns:
            errors.append(FieldError(f"[{at}].campaign_id", CONTROL_CHARACTERS))
        action = ACTION_CODES.get(event.action)
        if action is None:
            errors.append(FieldError(f"[{at}].action", f"unknown action {event.action!r}; see GET /api/actions"))
            continue
        details = msgspec.json.encode(event.details) if event.details else None
        if details is not None and len(details) > max_details_bytes:
            errors.append(
                FieldError(f"[{at}].details", f"at most {max_details_bytes:,} bytes of JSON, got {len(details):,}")
            )
        if len(errors) == found:
            occurred_at = datetime_to_ms(event.occurred_at)
            valid.append(NewEvent(event.id, email, action, occurred_at, event.campaign_id, details))
    return valid, errors
