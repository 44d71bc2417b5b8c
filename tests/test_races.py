"""Races: concurrent create, delete, rerun and reads of one account's reports from several API processes.

The one-active rule and the report state machine hold whatever the interleaving, and no report
is left `queued` without a job.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from litestar.testing import AsyncTestClient

from conftest import ApiAccount
from contactreports.api import reports as reports_api
from contactreports.api.app import create_app
from contactreports.config import Settings
from helpers import create_report, ingest, wait_done

SEARCH = {
    "email": "ann@example.com",
    "actions": ["email.opened"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


async def done_report_with_rows(client: httpx.AsyncClient, count: int) -> dict:
    opened = [
        {
            "email": "ann@example.com",
            "action": "email.opened",
            "occurred_at": f"2026-03-01T00:{n // 60:02d}:{n % 60:02d}Z",
        }
        for n in range(count)
    ]
    await ingest(client, opened)
    return await wait_done(client, (await create_report(client, **SEARCH))["id"])


async def test_a_rows_cursor_given_before_a_rerun_is_a_409_not_a_tampered_cursor(client: httpx.AsyncClient) -> None:
    report = await done_report_with_rows(client, 30)
    first = (await client.get(f"/api/reports/{report['id']}/rows", params={"limit": 10})).json()
    assert (await client.post(f"/api/reports/{report['id']}/rerun")).status_code == 202
    assert (await wait_done(client, report["id"]))["status"] == "done"

    second = await client.get(f"/api/reports/{report['id']}/rows", params={"limit": 10, "cursor": first["next_cursor"]})

    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["detail"] == (
        f"Report {report['id']} was re-run since this cursor was given; read its rows again from the first page."
    )
    # A cursor of the new run pages on as before.
    again = (await client.get(f"/api/reports/{report['id']}/rows", params={"limit": 10})).json()
    assert again["items"] == first["items"]
    following = await client.get(
        f"/api/reports/{report['id']}/rows", params={"limit": 10, "cursor": again["next_cursor"]}
    )
    assert following.status_code == 200
    assert len(following.json()["items"]) == 10


CHANGES = {"rerun": ("POST", "/api/reports/{id}/rerun"), "delete": ("DELETE", "/api/reports/{id}")}


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ("rerun", 409, "Report {id} was re-run while its rows were read; read them again once it is done."),
        ("delete", 404, "No such report."),
    ],
)
async def test_rows_read_while_another_process_reruns_or_deletes_the_report_are_not_an_empty_page(
    client: httpx.AsyncClient,
    api: str,
    account: ApiAccount,
    database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    status: int,
    detail: str,
) -> None:
    """The rows handler reads the report (done), then its rows: a rerun or delete committed by another
    API process in between used to give `200 {"items": [], "next_cursor": null}`, a done report that
    looks empty. The in-process app below makes that interleaving happen every time."""
    report = await done_report_with_rows(client, 30)
    method, path = CHANGES[change]
    other_process = httpx.Request(method, f"{api}{path.format(id=report['id'])}", headers=account.headers)
    monkeypatch.setattr(reports_api, "page_rows", _after(other_process, reports_api.page_rows))
    app = create_app(Settings(database_url=database_url, redis_url=redis_url))

    async with AsyncTestClient(app, timeout=30) as http:
        response = await http.get(f"/api/reports/{report['id']}/rows", headers=account.headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail.format(id=report["id"])


def _after(change: httpx.Request, page_rows: Callable) -> Callable:
    """page_rows, once another API process has carried out `change`: the race made certain.

    (The app runs on an event loop of its own, so the request goes out on a client of its own.)
    """

    async def changed_first(*args, **kwargs):
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.send(change)).status_code in (202, 204)
        return await page_rows(*args, **kwargs)

    return changed_first
