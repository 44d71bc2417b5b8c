"""Exports: CSV, NDJSON and XLSX of a done report, parsed back and compared with /rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import httpx
import openpyxl
import pytest
from openpyxl.utils.escape import unescape

from conftest import service_env, start_api
from contactreports import exports
from contactreports.store.database import Database
from contactreports.store.rows import stream_rows
from helpers import all_rows, create_report, ingest, parse_ts, put_campaign, stored_report, wait_done

SEARCH = {
    "email": "ann@example.com",
    "categories": ["email", "campaign"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


@pytest.fixture
async def report(client: httpx.AsyncClient) -> dict:
    await put_campaign(client, "plain", "Spring sale")
    await put_campaign(client, "evil", '=HYPERLINK("https://evil.example","click me")')
    await put_campaign(client, "minus", "-10% for you")
    await put_campaign(client, "plus", "+1 offer")
    await put_campaign(client, "at", "@everyone")
    await put_campaign(client, "tab", "\tindented")
    await put_campaign(client, "cr", "\rreturn")
    await ingest(
        client,
        [
            {
                "email": "ann@example.com",
                "action": "email.sent",
                "occurred_at": "2026-03-01T09:30:00.123Z",
                "campaign_id": "plain",
            },
            {
                "email": "ann@example.com",
                "action": "email.clicked",
                "occurred_at": "2026-03-01T10:00:00Z",
                "campaign_id": "evil",
                "details": {"url": "https://shop.example.com/a,b", "note": 'quote " and\nnewline'},
            },
            {
                "email": "ann@example.com",
                "action": "email.opened",
                "occurred_at": "2026-03-02T10:00:00Z",
                "campaign_id": "minus",
            },
            {
                "email": "ann@example.com",
                "action": "campaign.profile_updated",
                "occurred_at": "2026-03-03T10:00:00Z",
                "details": {"city": "@home"},
            },
            *(
                {
                    "email": "ann@example.com",
                    "action": "email.sent",
                    "occurred_at": f"2026-03-04T10:00:0{n}Z",
                    "campaign_id": c,
                }
                for n, c in enumerate(("plus", "at", "tab", "cr"))
            ),
        ],
    )
    return await wait_done(client, (await create_report(client, **SEARCH))["id"])


async def download(client: httpx.AsyncClient, report_id: str, export_format: str) -> httpx.Response:
    response = await client.get(f"/api/reports/{report_id}/export", params={"format": export_format})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"] == (
        f'attachment; filename="contact-report-{report_id}.{export_format}"'
    )
    return response


async def test_csv_export_matches_the_rows_with_formulas_neutralised(client: httpx.AsyncClient, report: dict) -> None:
    response = await download(client, report["id"], "csv")

    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(response.text)))
    assert table == [
        ["timestamp", "campaign", "action", "details"],
        ["2026-03-01T09:30:00.123Z", "Spring sale", "email.sent", "{}"],
        [
            "2026-03-01T10:00:00.000Z",
            '\'=HYPERLINK("https://evil.example","click me")',
            "email.clicked",
            '{"url":"https://shop.example.com/a,b","note":"quote \\" and\\nnewline"}',
        ],
        ["2026-03-02T10:00:00.000Z", "'-10% for you", "email.opened", "{}"],
        ["2026-03-03T10:00:00.000Z", "", "campaign.profile_updated", '{"city":"@home"}'],
        ["2026-03-04T10:00:00.000Z", "'+1 offer", "email.sent", "{}"],
        ["2026-03-04T10:00:01.000Z", "'@everyone", "email.sent", "{}"],
        ["2026-03-04T10:00:02.000Z", "'\tindented", "email.sent", "{}"],
        ["2026-03-04T10:00:03.000Z", "'\rreturn", "email.sent", "{}"],
    ]


async def test_ndjson_export_lines_are_the_rows_objects(client: httpx.AsyncClient, report: dict) -> None:
    response = await download(client, report["id"], "ndjson")

    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines == await all_rows(client, report["id"])
    assert len(lines) == 8


async def test_xlsx_export_holds_the_rows_as_text_and_real_timestamps(client: httpx.AsyncClient, report: dict) -> None:
    response = await download(client, report["id"], "xlsx")

    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == ["timestamp (UTC)", "campaign", "action", "details"]
    rows = await all_rows(client, report["id"])
    # XLSX stores a carriage return as _x000D_, which Excel shows as one; openpyxl leaves it escaped.
    assert [
        [when.replace(tzinfo=UTC), campaign and unescape(campaign), action, json.loads(details)]
        for when, campaign, action, details in values[1:]
    ] == [
        [
            parse_ts(row["occurred_at"]),
            row["campaign"]["name"] if row["campaign"] else None,
            row["action"],
            row["details"],
        ]
        for row in rows
    ]
    # Written as a string, the formula-like name is inert text in XLSX.
    assert sheet.cell(3, 2).data_type == "s"


async def test_an_empty_report_exports_just_the_header(client: httpx.AsyncClient) -> None:
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])

    assert (await download(client, report["id"], "csv")).text == "timestamp,campaign,action,details\r\n"
    assert (await download(client, report["id"], "ndjson")).text == ""


async def test_export_errors(client: httpx.AsyncClient, paused_client: httpx.AsyncClient, report: dict) -> None:
    unknown = await client.get(f"/api/reports/{report['id']}/export", params={"format": "pdf"})
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["field"] == "format"
    missing = await client.get("/api/reports/nope/export", params={"format": "csv"})
    assert missing.status_code == 404
    queued = await create_report(paused_client, **SEARCH)
    early = await paused_client.get(f"/api/reports/{queued['id']}/export", params={"format": "csv"})
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/problem+json"


async def test_xlsx_continues_on_a_new_sheet_past_excels_row_limit(
    db: Database, report: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "XLSX_ROWS_PER_SHEET", 3)  # Excel's is 1,048,575: the same code path, smaller
    with await exports.write_xlsx(stream_rows(db, await stored_report(db, report["id"]))) as file:
        workbook = openpyxl.load_workbook(io.BytesIO(file.read()))

    assert workbook.sheetnames == ["Rows", "Rows 2", "Rows 3"]
    actions = [[row[2] for row in sheet.iter_rows(min_row=2, values_only=True)] for sheet in workbook.worksheets]
    assert actions == [
        ["email.sent", "email.clicked", "email.opened"],
        ["campaign.profile_updated", "email.sent", "email.sent"],
        ["email.sent", "email.sent"],
    ]


@pytest.fixture(scope="module")
def generous_api(database_url: str, redis_url: str, logs: Path, worker) -> Iterator[str]:
    """An API that accepts event details longer than an Excel cell (the default cap is below it)."""
    process, url = start_api(service_env(database_url, redis_url, max_details_bytes=65_536), logs, "generous-api")
    yield url
    process.stop()


async def test_a_cell_too_long_for_excel_is_a_422_before_any_download(generous_api: str, account) -> None:
    async with httpx.AsyncClient(base_url=generous_api, headers=account.headers) as client:
        await ingest(
            client,
            [
                {
                    "email": "ann@example.com",
                    "action": "email.clicked",
                    "occurred_at": "2026-03-01T10:00:00Z",
                    "details": {"url": "https://x.example/" + "a" * 40_000},
                }
            ],
        )
        report = await wait_done(client, (await create_report(client, **SEARCH))["id"])

        response = await client.get(f"/api/reports/{report['id']}/export", params={"format": "xlsx"})
        csv_export = await download(client, report["id"], "csv")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "the row of 2026-03-01T10:00:00.000Z has a details of 40,028 characters; an Excel cell holds at most 32,767: "
        "export as CSV or NDJSON instead"
    )
    assert csv_export.text.count("a" * 40_000) == 1
