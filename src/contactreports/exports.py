"""A report's rows as CSV, NDJSON or XLSX, written chunk by chunk, never whole in memory."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, BinaryIO, Literal

import msgspec
import xlsxwriter

from contactreports.catalogue import category_of
from contactreports.models import CampaignRef, ReportRow, TimestampOut, format_ms

Format = Literal["csv", "ndjson", "xlsx"]
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv",  # Litestar adds "; charset=utf-8" to text/* types
    "ndjson": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
COLUMNS = ("timestamp", "campaign", "action", "details")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FILE_CHUNK = 64 * 1024


class RowView(msgspec.Struct):
    """A row as `/rows` and NDJSON show it."""

    occurred_at: TimestampOut
    action: str
    category: str
    campaign: CampaignRef | None
    # Stored JSON passed through as is: no decode and re-encode per row. Always an object, and
    # documented as one ("extra" is what Litestar copies into the OpenAPI schema): a union with
    # dict made it `oneOf: [object, {}]`, which no object satisfies (it matches both).
    details: Annotated[
        msgspec.Raw,
        msgspec.Meta(
            description="The event's details; {} when it had none.",
            # Any keys: without `additionalProperties`, openapi-typescript types it as an object with none.
            extra_json_schema={"extra": {"type": "object", "additional_properties": {}}},
        ),
    ]


class RowPage(msgspec.Struct):
    """A page of a report's rows, oldest first. `next_cursor` asks for the next page; null on the last."""

    items: list[RowView]
    next_cursor: str | None


def row_view(row: ReportRow) -> RowView:
    return RowView(format_ms(row.occurred_at), row.action, category_of(row.action), row.campaign, row.details)


def neutralise(cell: str) -> str:
    """Stop a spreadsheet from running a cell as a formula (OWASP's advice: a leading quote)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _cells(row: ReportRow) -> tuple[str, str, str]:
    campaign = row.campaign.name if row.campaign else ""
    return campaign, row.action, bytes(row.details).decode()


def _csv_lines(rows: list[ReportRow] | None) -> bytes:
    """CSV text for some rows; None for the header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if rows is None:
        writer.writerow(COLUMNS)
    else:
        writer.writerows((format_ms(row.occurred_at), *map(neutralise, _cells(row))) for row in rows)
    return buffer.getvalue().encode()


def _ndjson_lines(rows: list[ReportRow]) -> bytes:
    buffer = bytearray()
    for row in rows:
        _encoder.encode_into(row_view(row), buffer, -1)
        buffer += b"\n"
    return bytes(buffer)


_encoder = msgspec.json.Encoder()


async def csv_chunks(batches: AsyncIterator[list[ReportRow]]) -> AsyncIterator[bytes]:
    yield _csv_lines(None)
    async for batch in batches:
        # Formatting is CPU work: off the event loop, so status polls stay fast during exports.
        yield await asyncio.to_thread(_csv_lines, batch)


async def ndjson_chunks(batches: AsyncIterator[list[ReportRow]]) -> AsyncIterator[bytes]:
    async for batch in batches:
        yield await asyncio.to_thread(_ndjson_lines, batch)


class ExportTooLarge(Exception):
    """The rows do not fit the format (Excel's limits)."""


# Excel's limits: rows per sheet (after the header) and characters per cell.
XLSX_ROWS_PER_SHEET = 1_048_575
XLSX_CELL_CHARS = 32_767


async def write_xlsx(batches: AsyncIterator[list[ReportRow]]) -> BinaryIO:
    """Write the rows as XLSX to an anonymous temporary file (constant-memory mode).

    XLSX is a zip, so it cannot be streamed as it is written; writing it first also lets a
    row Excel cannot hold be a clear error before any byte is sent. Rows past Excel's
    1,048,575 per sheet continue on further sheets. Returns the file, rewound.
    """
    handle, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(handle)
    try:
        await _write_xlsx(path, batches)
        file = open(path, "rb")  # the caller streams it (file_chunks), which closes it
    finally:
        os.unlink(path)  # an open file stays readable; its space is freed when it is closed
    return file


async def file_chunks(file: BinaryIO) -> AsyncIterator[bytes]:
    with file:
        while chunk := file.read(_FILE_CHUNK):
            yield chunk


async def _write_xlsx(path: str, batches: AsyncIterator[list[ReportRow]]) -> None:
    workbook = xlsxwriter.Workbook(path, {"constant_memory": True})
    bold = workbook.add_format({"bold": True})
    when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss.000"})
    sheet, written = None, 0

    def new_sheet() -> Any:
        sheet = workbook.add_worksheet(
            "Rows" if not workbook.worksheets() else f"Rows {len(workbook.worksheets()) + 1}"
        )
        sheet.set_column(0, 0, 24)
        sheet.set_column(1, 2, 28)
        sheet.set_column(3, 3, 60)
        sheet.write_row(0, 0, ("timestamp (UTC)", *COLUMNS[1:]), bold)
        return sheet

    def write(batch: list[ReportRow]) -> None:
        nonlocal sheet, written
        for row in batch:
            if sheet is None or written % XLSX_ROWS_PER_SHEET == 0:
                sheet = new_sheet()
            line = written % XLSX_ROWS_PER_SHEET + 1
            moment = datetime.fromtimestamp(row.occurred_at / 1000, UTC).replace(tzinfo=None)
            sheet.write_datetime(line, 0, moment, when)
            for column, cell in enumerate(_cells(row), start=1):
                if len(cell) > XLSX_CELL_CHARS:
                    raise ExportTooLarge(
                        f"the row of {format_ms(row.occurred_at)} has a {COLUMNS[column]} of {len(cell):,} characters; "
                        f"an Excel cell holds at most {XLSX_CELL_CHARS:,}: export as CSV or NDJSON instead"
                    )
                if cell:  # no campaign: a blank cell, not an empty string
                    # write_string stores text as text: a leading "=" is never run as a formula in XLSX.
                    sheet.write_string(line, column, cell)
            written += 1

    try:
        async for batch in batches:
            await asyncio.to_thread(write, batch)  # CPU-bound: keep the event loop free
        if sheet is None:
            new_sheet()
    finally:
        await asyncio.to_thread(workbook.close)


STREAMED = {"csv": csv_chunks, "ndjson": ndjson_chunks}
