"""`contactreports import`: bulk-load events from NDJSON or CSV, checked in full before any is stored."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
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
from contactreports.store.events import insert_events

# Events per transaction. Events are clustered by contact, so a batch's inserts land on pages
# all over the table, and each transaction writes every page it touched to the WAL once: ten
# times the events per transaction writes far fewer pages per event (bench/ingest.py). The
# write lock is held for a second or two at a time; API writers wait for it (busy timeout).
BATCH = 100_000
# Pass 1's checked events are kept for pass 2 when the file is at most this large, instead of
# reading, decoding and checking it all a second time (half the Python work of an import). They
# take about twice the file's size in memory (430 bytes for a 222-byte line of bench/ingest.py's
# file): up to about 500 MB. A larger file is read twice.
KEPT_FILE_BYTES = 256 * 1024 * 1024


def _ndjson_events(path: Path) -> Iterator[EventIn]:
    with path.open("rb") as file:
        index = 0
        for line in file:
            if line.strip():
                yield decode_line(index, line)
                index += 1


def _csv_events(path: Path) -> Iterator[EventIn]:
    """Columns as the JSON fields (email, action, occurred_at, id, campaign_id, details as JSON)."""
    with path.open(newline="", encoding="utf-8") as file:
        for index, row in enumerate(csv.DictReader(file)):
            fields = {key: value for key, value in row.items() if key and value not in ("", None)}
            try:
                if "details" in fields:
                    fields["details"] = msgspec.json.decode(fields["details"])
                yield msgspec.convert(fields, EventIn)
            except msgspec.ValidationError as error:
                raise InvalidEvents([field_error(error, prefix=f"[{index}]")]) from error
            except UNDECODABLE as error:
                raise InvalidEvents([FieldError(f"[{index}].details", undecodable(error))]) from error


def _batches(path: Path, file_format: str) -> Iterator[list[EventIn]]:
    batch: list[EventIn] = []
    for event in (_csv_events if file_format == "csv" else _ndjson_events)(path):
        batch.append(event)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _shift(errors: list[FieldError], offset: int) -> list[FieldError]:
    """Batch-relative `[3].email` -> file-relative `[10003].email`."""
    return [
        FieldError(f"[{int(e.field[1:].split(']')[0]) + offset}]{e.field.split(']', 1)[1]}", e.message)
        if e.field.startswith("[")
        else e
        for e in errors
    ]


async def import_file(db: Database, account_id: int, path: Path, file_format: str, max_details_bytes: int) -> None:
    if not await account_exists(db, account_id):
        raise click.ClickException(f"no account {account_id}")
    # Pass 1 checks every event, so a bad line stops the import before anything is stored.
    count, campaigns = 0, set()
    kept: list[list[NewEvent]] | None = [] if path.stat().st_size <= KEPT_FILE_BYTES else None
    try:
        for batch in tqdm(_batches(path, file_format), desc="checking", unit=" batches", leave=False):
            try:
                checked = to_new_events(batch, max_details_bytes)
            except InvalidEvents as error:  # its indexes count from the batch's start, the readers' from the file's
                raise InvalidEvents(_shift(error.errors, count)) from error
            campaigns.update(event.campaign_id for event in batch if event.campaign_id)
            count += len(batch)
            if kept is not None:
                kept.append(checked)
    except InvalidEvents as error:
        raise click.ClickException(_describe(error.errors)) from error
    except UnicodeDecodeError as error:  # a CSV file is read as text
        raise click.ClickException(f"{path} is not UTF-8 text ({error}); nothing was stored") from error
    unknown = campaigns - await known_campaign_ids(db, account_id, campaigns)
    if unknown:
        raise click.ClickException(f"unknown campaigns, nothing was stored: {', '.join(sorted(unknown)[:20])}")
    started, ingested, duplicates = time.perf_counter(), 0, 0
    with tqdm(total=count, desc="importing", unit=" events", unit_scale=True) as bar:
        for events in kept if kept is not None else _checked_again(path, file_format, max_details_bytes):
            added, skipped = await insert_events(db, account_id, events)
            ingested, duplicates = ingested + added, duplicates + skipped
            bar.update(len(events))
    seconds = time.perf_counter() - started
    click.echo(
        f"imported {ingested:,} events ({duplicates:,} duplicates skipped) in {seconds:.1f} s: "
        f"{count / seconds if seconds else 0:,.0f} events/s"
    )


def _checked_again(path: Path, file_format: str, max_details_bytes: int) -> Iterator[list[NewEvent]]:
    """Pass 2 for a file too large to keep: the file could have changed since pass 1, so check again."""
    for batch in _batches(path, file_format):
        yield to_new_events(batch, max_details_bytes)


def _describe(errors: list[FieldError]) -> str:
    shown = "\n".join(f"  event {e.field}: {e.message}" for e in errors[:10])
    more = f"\n  … and {len(errors) - 10} more" if len(errors) > 10 else ""
    return f"invalid events, nothing was stored:\n{shown}{more}"
