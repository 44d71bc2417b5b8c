"""`contactreports import`: bulk-load events from NDJSON or CSV, checked in full before any is stored."""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
import msgspec
from tqdm import tqdm

from contactreports.ingest import (
    UNDECODABLE,
    EventIn,
    InvalidEvents,
    decode_line,
    field_error,
    to_new_events,
    undecodable,
)
from contactreports.models import FieldError, NewEvent
from contactreports.store.accounts import account_exists
from contactreports.store.campaigns import known_campaign_ids
from contactreports.store.database import Database
from contactreports.store.events import UnknownCampaigns, insert_events

# Events per transaction. Events are clustered by contact, so a batch's inserts land on pages
# all over the table, and each transaction writes every page it touched to the WAL once: ten
# times the events per transaction writes far fewer pages per event (bench/ingest.py). The
# write lock is held for a second or two at a time; API writers wait for it (busy timeout).
BATCH = 100_000
# Pass 1's checked events are kept for pass 2 while they hold at most this much memory (by
# `_held_bytes`), instead of reading, decoding and checking the file a second time (half the
# Python work of an import): about 1.3M events like bench/ingest.py's. Past it they are dropped
# and pass 2 reads the file again; a pipe, which cannot be read again, is refused past it.
KEPT_BYTES = 512 * 1024 * 1024
# What a kept event holds besides its strings' characters: the Struct, its ints, a list slot and
# the strings' own headers (measured: 190 bytes an event with a short email only, 430 with an
# id and 60 bytes of details).
EVENT_OVERHEAD_BYTES = 300
# Counts with thousands separators: tqdm's own scaling shows one event as `1.00`.
CHECKING = "{desc}: {n:,} events [{elapsed}]"
IMPORTING = "{desc}: {percentage:3.0f}%|{bar}| {n:,}/{total:,} events [{elapsed}<{remaining}]"
_LINE_FIELD = re.compile(r"^\[(\d+)\]\.?(.*)$", re.DOTALL)


def _ndjson_events(path: Path) -> Iterator[tuple[int, EventIn]]:
    """Each event with its line's number (from 1, blank lines counted: as an editor shows them)."""
    with path.open("rb") as file:
        for line_number, line in enumerate(file, start=1):
            if line.strip():
                yield line_number, decode_line(line_number, line)


def _csv_events(path: Path) -> Iterator[tuple[int, EventIn]]:
    """Columns as the JSON fields (email, action, occurred_at, id, campaign_id, details as JSON); each event
    with the number of the line its row starts on (the header is line 1)."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.reader(file)
        header = next((row for row in reader if row), [])
        line_number = reader.line_num + 1  # a quoted value may span lines: a row starts after the last one
        for row in reader:
            if row:  # not a blank line
                yield line_number, _csv_event(line_number, dict(zip(header, row, strict=False)))
            line_number = reader.line_num + 1


def _csv_event(line_number: int, row: dict[str, str]) -> EventIn:
    fields = {key: value for key, value in row.items() if key and value}
    try:
        if "details" in fields:
            fields["details"] = msgspec.json.decode(fields["details"])
        return msgspec.convert(fields, EventIn)
    except msgspec.ValidationError as error:
        raise InvalidEvents([field_error(error, prefix=f"[{line_number}]")]) from error
    except UNDECODABLE as error:
        raise InvalidEvents([FieldError(f"[{line_number}].details", undecodable(error))]) from error


def _events(path: Path, file_format: str) -> Iterator[tuple[int, EventIn]]:
    return (_csv_events if file_format == "csv" else _ndjson_events)(path)


def _batches(events: Iterable[tuple[int, EventIn]]) -> Iterator[tuple[list[int], list[EventIn]]]:
    """The events BATCH at a time, with their line numbers."""
    lines: list[int] = []
    batch: list[EventIn] = []
    for line, event in events:
        lines.append(line)
        batch.append(event)
        if len(batch) == BATCH:
            yield lines, batch
            lines, batch = [], []
    if batch:
        yield lines, batch


async def import_file(db: Database, account_id: int, path: Path, file_format: str, max_details_bytes: int) -> None:
    if not await account_exists(db, account_id):
        raise click.ClickException(f"no account {account_id}")
    fingerprint = _fingerprint(path)
    count, kept = await _check_all(db, account_id, path, file_format, max_details_bytes)
    if kept is None and _fingerprint(path) != fingerprint:
        raise click.ClickException(f"{path} changed while it was being checked; nothing was stored")
    started, ingested, duplicates = time.perf_counter(), 0, 0
    try:
        with tqdm(total=count, desc="importing", bar_format=IMPORTING) as bar:
            for events in kept if kept is not None else _checked_again(path, file_format, max_details_bytes):
                added, skipped = await insert_events(db, account_id, events)
                ingested, duplicates = ingested + added, duplicates + skipped
                bar.update(len(events))
    except (InvalidEvents, UnknownCampaigns, UnicodeDecodeError) as error:  # pass 2 of a file changed meanwhile
        raise click.ClickException(
            f"{path} changed while it was being imported ({error}); the {ingested + duplicates:,} events before "
            "the change were stored, the rest were not"
        ) from error
    seconds = time.perf_counter() - started
    click.echo(
        f"imported {ingested:,} events ({duplicates:,} duplicates skipped) in {seconds:.1f} s: "
        f"{count / seconds if seconds else 0:,.0f} events/s"
    )


async def _check_all(
    db: Database, account_id: int, path: Path, file_format: str, max_details_bytes: int
) -> tuple[int, list[list[NewEvent]] | None]:
    """Pass 1: check every event, so a bad line stops the import before anything is stored.

    Returns the events' count, and the checked events if they fit KEPT_BYTES.
    """
    count, campaigns, held = 0, set(), 0
    kept: list[list[NewEvent]] | None = []
    try:
        # The events are counted as they are read: how many a file holds is known only at its end.
        with tqdm(_events(path, file_format), desc="checking", bar_format=CHECKING, leave=False) as read:
            for lines, batch in _batches(read):
                checked = to_new_events(batch, max_details_bytes, positions=lines)
                campaigns.update(event.campaign_id for event in batch if event.campaign_id)
                count += len(batch)
                if kept is not None:
                    kept.append(checked)
                    held += _held_bytes(checked)
                    if held > KEPT_BYTES:
                        _must_be_readable_again(path)
                        kept = None  # pass 2 reads the file again
    except InvalidEvents as error:
        raise click.ClickException(_describe(error.errors)) from error
    except UnicodeDecodeError as error:  # a CSV file is read as text
        raise click.ClickException(f"{path} is not UTF-8 text ({error}); nothing was stored") from error
    unknown = campaigns - await known_campaign_ids(db, account_id, campaigns)
    if unknown:
        raise click.ClickException(f"unknown campaigns, nothing was stored: {', '.join(sorted(unknown)[:20])}")
    return count, kept


def _held_bytes(events: list[NewEvent]) -> int:
    return sum(EVENT_OVERHEAD_BYTES + len(e.email) + len(e.event_id or "") + len(e.details or b"") for e in events)


def _must_be_readable_again(path: Path) -> None:
    """Too many events to keep: pass 2 must read the file again, which a pipe cannot be."""
    if not path.is_file():
        raise click.ClickException(
            f"{path} is not a regular file and holds more events than an import keeps in memory "
            f"({KEPT_BYTES // 2**20} MB): save it to a file and import that; nothing was stored"
        )


def _fingerprint(path: Path) -> tuple[int, ...]:
    """What changes when the file is rewritten, replaced or appended to."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _checked_again(path: Path, file_format: str, max_details_bytes: int) -> Iterator[list[NewEvent]]:
    """Pass 2 for a file too large to keep: the file could have changed since pass 1, so check again."""
    for lines, batch in _batches(_events(path, file_format)):
        yield to_new_events(batch, max_details_bytes, positions=lines)


def _describe(errors: list[FieldError]) -> str:
    shown = "\n".join(f"  {_on_its_line(e)}" for e in errors[:10])
    more = f"\n  … and {len(errors) - 10} more" if len(errors) > 10 else ""
    return f"invalid events, nothing was stored:\n{shown}{more}"


def _on_its_line(error: FieldError) -> str:
    """`[3].email` (an event named by its line) -> `line 3: email: not an email address`."""
    line, field = _LINE_FIELD.match(error.field).groups()
    return f"line {line}: {field + ': ' if field else ''}{error.message}"
