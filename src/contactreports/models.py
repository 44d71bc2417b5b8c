"""Domain types shared by the store, the API and the jobs. Times are integer UTC milliseconds."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec

# A timestamp in a request must carry an offset: a naive one is ambiguous, so it is rejected.
Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with an offset, e.g. 2026-03-01T09:30:00Z")]
# A timestamp in a response: UTC, `Z`, millisecond precision (`format_ms`). Documented as a
# date-time ("extra" is what Litestar copies into the OpenAPI schema), so generated clients
# give datetimes, not strings.
TimestampOut = Annotated[
    str, msgspec.Meta(examples=["2026-03-01T09:30:00.000Z"], extra_json_schema={"extra": {"format": "date-time"}})
]
Status = Literal["queued", "processing", "done", "failed"]
Channel = Literal["email", "sms", "whatsapp", "automation"]


class FieldError(msgspec.Struct, frozen=True):
    """What is wrong with one field of the input, e.g. ("[17].action", "unknown action")."""

    field: str
    message: str


class InvalidFields(Exception):
    """Input that fails its checks, naming every field that does (the API's 400 with `errors`)."""

    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class Account(msgspec.Struct, frozen=True):
    id: int
    name: str


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """One of an account's API keys; its secret is never kept, only its hash."""

    pk: int
    id: str
    name: str
    read_only: bool
    # The secret's first characters (`cr_` and a few more), to tell keys apart; None for a key
    # made before keys had them, whose secret was never seen since.
    prefix: str | None
    created_at: int


class Caller(msgspec.Struct, frozen=True):
    """Who a request comes from: an account, through one of its API keys (or a web session
    signed in with one), which may only read when `read_only`."""

    account: Account
    key_id: str
    read_only: bool


class Campaign(msgspec.Struct, frozen=True):
    id: str
    name: str
    channel: Channel
    sent_at: int | None
    archived: bool


class CampaignRef(msgspec.Struct, frozen=True):
    """A row's campaign, as rows and exports show it."""

    id: str
    name: str
    archived: bool


class NewEvent(msgspec.Struct, frozen=True):
    """A validated event, ready to store: email normalised, action and campaign resolved."""

    event_id: str | None
    email: str
    action: int
    occurred_at: int
    campaign_id: str | None
    # The details object as JSON text, or None for no details.
    details: bytes | None


class ReportSpec(msgspec.Struct, frozen=True):
    """What a report searches for."""

    email: str
    actions: tuple[str, ...]
    start: int
    end: int
    include_archived: bool


class Report(msgspec.Struct, frozen=True, kw_only=True):
    pk: int
    id: str
    account_id: int
    spec: ReportSpec
    status: Status
    run: int
    attempts: int
    scanned: int
    total: int | None
    row_count: int | None
    error: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None


class Summary(msgspec.Struct, frozen=True):
    """A done run's rows at a glance."""

    # Rows per action name, most first.
    counts: dict[str, int]
    # The first and last row's occurred_at; None when there are no rows.
    first: int | None
    last: int | None
    # Rows per equal slice of [first, last]: an activity-over-time chart's bars.
    activity: list[int]


class ReportRow(msgspec.Struct, frozen=True):
    occurred_at: int
    seq: int
    action: str
    campaign: CampaignRef | None
    # The details object as JSON text ("{}" when the event had none).
    details: msgspec.Raw


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # naive: isoformat() then adds no offset
_MS = timedelta(milliseconds=1)
# Accepted timestamps: wide enough for any real event, narrow enough that every one has a
# four-digit year in UTC and a date a spreadsheet can show.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "must be from 1900-01-01T00:00:00Z up to 9999-01-01T00:00:00Z"


def now_ms() -> int:
    return datetime_to_ms(datetime.now(UTC))


def datetime_to_ms(value: datetime) -> int:
    """Milliseconds since 1970, rounded down (also before 1970)."""
    return (value - EPOCH) // _MS


def in_range(value: datetime) -> bool:
    return EARLIEST <= value < LATEST


def format_ms(ms: int) -> str:
    """RFC 3339 in UTC with millisecond precision: 2026-03-01T09:30:00.000Z.

    isoformat() always writes a four-digit year, and is several times faster than strftime:
    a polled report formats five timestamps."""
    return (_NAIVE_EPOCH + ms * _MS).isoformat(timespec="milliseconds") + "Z"


def normalize_email(raw: str) -> str:
    """Trimmed and lower-cased, and NFC-normalised so that é typed either way is one address."""
    if raw.isascii():  # nearly every address, and ASCII text is already NFC: skip the normaliser
        return raw.strip().lower()
    return unicodedata.normalize("NFC", raw).strip().lower()


CONTROL_CHARACTERS = "control characters (NUL, ESC, tab, newline...) are not allowed"
# Text such as a campaign name may hold tabs and line breaks (CSV quotes them, XLSX keeps them),
# but not the other control characters, which are not even allowed in XLSX's XML.
TEXT_CONTROLS = "\t\n\r"
MAX_CAMPAIGN_NAME = 200
CONTROL_CHARACTERS_IN_TEXT = "control characters other than tab and line breaks are not allowed"


# Unicode's control characters (category Cc) are exactly these; a regex checks a million ids
# and emails in a fraction of the time a per-character loop takes.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ASCII_SPACE_OR_CONTROL = re.compile("[\x00-\x20\x7f]")
_CONTROLS_EXCEPT = {"": _CONTROLS, TEXT_CONTROLS: _CONTROLS_BUT_TEXT}


def text_controls_as_spaces(text: str) -> str:
    """`text` with the control characters a text may not hold (all but tab and line breaks) as spaces."""
    return _CONTROLS_BUT_TEXT.sub(" ", text)


def control_characters_in(text: str | None, allowed: str = "") -> bool:
    """Ids never need control characters, and they break terminals, logs, CSV and XLSX."""
    return bool(text and _CONTROLS_EXCEPT[allowed].search(text))


MAX_KEY_NAME = 100


def key_name_problem(name: str) -> str | None:
    """What is wrong with an API key's name, or None: a name is one line, not blank."""
    if control_characters_in(name):
        return CONTROL_CHARACTERS
    if not name.strip():
        return "must not be blank"
    if len(name) > MAX_KEY_NAME:
        return f"at most {MAX_KEY_NAME} characters"
    return None


def _spaces_or_invisibles_in(email: str) -> bool:
    """Spaces, control or invisible format characters (NUL, U+202E, zero-width space...)."""
    if email.isascii():  # nearly every address: ASCII has no format characters
        return bool(_ASCII_SPACE_OR_CONTROL.search(email))
    return any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in email)


def is_plausible_email(email: str) -> bool:
    """One @, something on both sides, a dot in the domain, no spaces or control characters."""
    local, at, domain = email.partition("@")
    return (
        bool(at and local and domain)
        and "@" not in domain
        and "." in domain.strip(".")
        and len(email) <= 320
        and not _spaces_or_invisibles_in(email)
    )
