"""A verified delivery's events, checked as `POST /api/events` checks events, and the names the
provider gives what it sends (campaigns, ignored types), made fit to store, answer and log."""

from __future__ import annotations

import re

import msgspec

from contactreports.ingest import InvalidEvents, check_events, decode_line
from contactreports.models import MAX_CAMPAIGN_NAME, FieldError, NewEvent, text_controls_as_spaces
from contactreports.webhooks.base import Adapter, Delivery, Parsed, shown

# The longest name of an ignored type answered and logged (see `ignored_names`).
MAX_IGNORED_NAME = 100


def campaign_name(campaign_id: str, name: str) -> str:
    """A provider's name for a campaign as PUT /api/campaigns takes one: control characters become
    spaces, and it is cut to 200 characters (a provider's name is shown, never looked up)."""
    cleaned = text_controls_as_spaces(name).strip()[:MAX_CAMPAIGN_NAME]
    return cleaned or campaign_id[:MAX_CAMPAIGN_NAME]


def _checked(parsed: Parsed, max_details_bytes: int) -> tuple[list[NewEvent], list[FieldError]]:
    """The adapter's events that pass every check of `POST /api/events`, and what is wrong with the others.

    A provider retries a refused delivery whole, then gives up on it: one event we cannot store
    (an address our check refuses, an over-long tag) must not cost the delivery's other events.
    What is wrong is named by the event's position in the delivery (`Parsed.positions`), with
    what the adapter set aside itself, in the order of the delivery.
    """
    positions = parsed.positions or list(range(len(parsed.events)))
    decoded, kept, rejected = [], [], list(parsed.rejected)
    for position, event in zip(positions, parsed.events, strict=True):
        try:
            # Encoded and decoded again: the limits EventIn declares (lengths of ids, say) hold too.
            decoded.append(decode_line(position, msgspec.json.encode(event)))
        except InvalidEvents as error:
            rejected.extend(error.errors)
        else:
            kept.append(position)
    valid, errors = check_events(decoded, max_details_bytes, kept)
    return valid, sorted(rejected + errors, key=_position)


def parsed_and_checked(
    adapter: Adapter, delivery: Delivery, max_details_bytes: int
) -> tuple[Parsed, list[NewEvent], list[FieldError]]:
    """The verified delivery's events: what the adapter makes of it, and of those the events to
    store and what is wrong with the others (see `_checked`). Run by `off_loop`: CPU work."""
    parsed = adapter.parse(delivery)
    return parsed, *_checked(parsed, max_details_bytes)


def _position(error: FieldError) -> int:
    """The position a rejected event's error names (`[12].email`: 12); sorted stably, so an
    event's errors keep their order."""
    match = _POSITION.match(error.field)
    return int(match[1]) if match else -1


_POSITION = re.compile(r"\[(\d+)\]")


def ignored_names(ignored: dict[str, int]) -> dict[str, int]:
    """The provider's names of the types it ignored, as they may be answered and logged.

    They are the provider's text, of any length and any characters: each control character
    (a newline would start a line of its own in the log) is written as its escape (`\\n`,
    `\\x07`), then a name longer than MAX_IGNORED_NAME characters is cut to that many, the last
    an ellipsis. Names alike once so cut (two long names of one prefix) are counted together,
    so the counts still add up to the events ignored.
    """
    names: dict[str, int] = {}
    for name, count in ignored.items():
        escaped = shown(_CONTROLS_IN_TYPE.sub(lambda control: repr(control[0])[1:-1], name), MAX_IGNORED_NAME)
        names[escaped] = names.get(escaped, 0) + count
    return names


# Control characters, and the two line breaks of Unicode a log viewer may break a line at.
_CONTROLS_IN_TYPE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
