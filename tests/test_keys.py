"""API keys (several an account, read-only or not, rotated and revoked) and the web page's sessions,
which live in the database: signing out, or revoking or rotating the key, ends one everywhere."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import uuid
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import ApiAccount, service_env, start_api
from contactreports.cli.embedded_redis import free_port
from contactreports.store import sqlite
from contactreports.store.database import ConstraintViolation, Database, migration_files
from helpers import create_report, ingest, put_campaign, show_ts, signed_in, wait_done

SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}
READ_ONLY = {
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
    "detail": "This API key is read-only: it may only read (GET). Use a full-access key to change anything.",
}
UNKNOWN_KEY = {"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "Unknown API key."}
NO_SUCH_KEY = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "No such API key."}
CONTROL_CHARACTERS = "control characters (NUL, ESC, tab, newline...) are not allowed"
SIGN_IN_FORM = "<h1>Sign in</h1>"
SIGNED_IN = 'class="who"'
SECRET = re.compile(r"cr_[A-Za-z0-9_-]{43}")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def shown_ms(ms: int) -> str:
    return show_ts(datetime.fromtimestamp(ms / 1000, UTC))


STORED_KEY = ("id", "name", "read_only", "prefix", "created_at", "secret_hash")


async def stored_keys(db: Database, account_id: int) -> list[tuple]:
    """The account's keys as stored, oldest first: a tuple of the STORED_KEY columns each."""
    rows = await db.fetch(
        f"SELECT {', '.join(STORED_KEY)} FROM api_keys WHERE account_id = :account_id ORDER BY pk",
        {"account_id": account_id},
    )
    return [tuple(row[column] for column in STORED_KEY) for row in rows]


async def sessions_of(db: Database, account_id: int) -> int:
    return await db.fetch_value(
        "SELECT count(*) FROM web_sessions s JOIN api_keys k ON k.pk = s.key_pk WHERE k.account_id = :account_id",
        {"account_id": account_id},
    )


async def make_key(client: httpx.AsyncClient, name: str, *, read_only: bool = False) -> dict[str, Any]:
    response = await client.post("/api/keys", json={"name": name, "read_only": read_only})
    assert response.status_code == 201, response.text
    return response.json()


async def test_keys_are_created_listed_rotated_and_revoked_their_secrets_shown_once(
    client: httpx.AsyncClient, account: ApiAccount, db: Database, paused_apis: list[str]
) -> None:
    [(first_id, _, _, _, first_created, _)] = await stored_keys(db, account.id)
    first = {
        "id": first_id,
        "name": "default",
        "read_only": False,
        "prefix": account.api_key[:10],
        "created_at": shown_ms(first_created),
    }
    assert (await client.get("/api/keys")).json() == {"items": [first], "next_cursor": None}

    made = await make_key(client, "  reporting dashboard ")
    [_, (made_id, _, _, prefix, made_created, made_hash)] = await stored_keys(db, account.id)
    assert made == {
        "id": made_id,
        "name": "reporting dashboard",
        "read_only": False,
        "prefix": made["api_key"][:10],
        "created_at": shown_ms(made_created),
        "api_key": made["api_key"],
    }
    assert SECRET.fullmatch(made["api_key"]) and prefix == made["api_key"][:10]
    assert made_hash == sha256(made["api_key"])  # the secret itself is not kept
    listed = await client.get("/api/keys")
    public = {name: value for name, value in made.items() if name != "api_key"}
    assert listed.json() == {"items": [first, public], "next_cursor": None}
    assert made["api_key"] not in listed.text and made_hash not in listed.text
    page = (await client.get("/api/keys", params={"limit": 1})).json()
    assert page["items"] == [first]
    second_page = await client.get("/api/keys", params={"limit": 1, "cursor": page["next_cursor"]})
    assert second_page.json() == {"items": [public], "next_cursor": None}

    other_api, another_api = paused_apis  # two more API processes on the same database
    async with httpx.AsyncClient(base_url=other_api, headers=bearer(made["api_key"])) as made_client:
        assert (await made_client.get("/api/reports")).status_code == 200
        rotated = await client.post(f"/api/keys/{made_id}/rotate")
        assert rotated.status_code == 200
        new_secret = rotated.json()["api_key"]
        assert rotated.json() == {**public, "prefix": new_secret[:10], "api_key": new_secret}
        assert SECRET.fullmatch(new_secret) and new_secret != made["api_key"]
        old = await made_client.get("/api/reports")  # on another process, at once
        assert (old.status_code, old.json()) == (401, UNKNOWN_KEY)

    async with httpx.AsyncClient(base_url=another_api, headers=bearer(new_secret)) as rotated_client:
        assert (await rotated_client.get("/api/reports")).status_code == 200
        assert (await client.delete(f"/api/keys/{made_id}")).status_code == 204
        revoked = await rotated_client.get("/api/reports")
        assert (revoked.status_code, revoked.json()) == (401, UNKNOWN_KEY)

    assert (await client.get("/api/keys")).json() == {"items": [first], "next_cursor": None}
    for response in [await client.delete(f"/api/keys/{made_id}"), await client.post(f"/api/keys/{made_id}/rotate")]:
        assert (response.status_code, response.json()) == (404, NO_SUCH_KEY)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"name": " \t"}, [{"field": "name", "message": CONTROL_CHARACTERS}]),
        ({"name": "   "}, [{"field": "name", "message": "must not be blank"}]),
        ({"name": "a\nb"}, [{"field": "name", "message": CONTROL_CHARACTERS}]),
        ({"name": "x" * 101}, [{"field": "name", "message": "Expected `str` of length <= 100"}]),
        ({"name": "x", "read_only": "yes"}, [{"field": "read_only", "message": "Expected `bool`, got `str`"}]),
        ({}, [{"field": "name", "message": "Object missing required field `name`"}]),
    ],
)  # fmt: skip
async def test_a_key_needs_a_one_line_name(
    client: httpx.AsyncClient, account: ApiAccount, db: Database, body: dict, errors: list
) -> None:
    response = await client.post("/api/keys", json=body)

    assert (response.status_code, response.json()["errors"]) == (400, errors)
    assert len(await stored_keys(db, account.id)) == 1


async def test_the_last_full_access_key_cannot_be_revoked(
    client: httpx.AsyncClient, account: ApiAccount, db: Database
) -> None:
    [(first_id, *_)] = await stored_keys(db, account.id)
    read_only = await make_key(client, "viewer", read_only=True)  # may read, so it does not count

    refused = await client.delete(f"/api/keys/{first_id}")

    assert (refused.status_code, refused.json()) == (
        409,
        {
            "type": "about:blank",
            "title": "Conflict",
            "status": 409,
            "detail": "This is the account's last full-access key, so it cannot be revoked: nobody could manage the "
            "account's keys any more. Create another full-access key first (or rotate this one).",
        },
    )
    assert (await client.get("/api/reports")).status_code == 200
    assert (await client.delete(f"/api/keys/{read_only['id']}")).status_code == 204
    second = await make_key(client, "second admin")
    assert (await client.delete(f"/api/keys/{first_id}")).status_code == 204  # another full-access key is left
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=bearer(second["api_key"])) as admin:
        assert (await admin.delete(f"/api/keys/{second['id']}")).status_code == 409
    assert [row[0] for row in await stored_keys(db, account.id)] == [second["id"]]


async def test_a_read_only_key_may_read_but_not_write_nor_manage_keys(
    api: str, client: httpx.AsyncClient, account: ApiAccount, db: Database
) -> None:
    await put_campaign(client, "spring", "Spring sale")
    await ingest(
        client, [{"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T09:00:00Z"}]
    )
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])
    secret = (await make_key(client, "viewer", read_only=True))["api_key"]
    document = (await client.get("/schema/openapi.json")).json()
    writes = [
        (method.upper(), re.sub(r"{\w+}", "x", path))
        for path, item in document["paths"].items()
        for method in item
        if path.startswith("/api/") and method in ("put", "post", "delete", "patch")
    ]
    keys_before = await stored_keys(db, account.id)

    async with httpx.AsyncClient(base_url=api, headers=bearer(secret), timeout=30) as viewer:
        for path in ["/api/actions", "/api/campaigns", "/api/campaigns/spring", "/api/reports", "/api/webhooks"]:
            assert (await viewer.get(path)).status_code == 200, path
        assert (await viewer.get(f"/api/reports/{report['id']}")).json() == report
        assert (await viewer.get(f"/api/reports/{report['id']}/rows")).json()["items"][0]["action"] == "email.opened"
        export = await viewer.get(f"/api/reports/{report['id']}/export", params={"format": "csv"})
        assert export.status_code == 200
        refused = {(method, path): await viewer.request(method, path, json={}) for method, path in writes}
        listing = await viewer.get("/api/keys")

    assert {"POST /api/reports", "DELETE /api/keys/x", "POST /api/keys/x/rotate", "PUT /api/webhooks/x"} <= {
        f"{method} {path}" for method, path in writes
    }
    assert {request: (r.status_code, r.json()) for request, r in refused.items()} == {
        request: (403, READ_ONLY) for request in writes
    }
    assert (listing.status_code, listing.json()["detail"]) == (
        403,
        "This API key is read-only: only a full-access key may list or manage API keys.",
    )
    assert (await client.get("/api/reports")).json()["items"] == [report]
    assert await stored_keys(db, account.id) == keys_before


async def test_signing_out_ends_the_session_on_every_api_process_and_every_copy_of_its_cookie(
    paused_apis: list[str], account: ApiAccount, db: Database
) -> None:
    one, other = paused_apis
    async with httpx.AsyncClient(base_url=one, headers=account.headers) as api:
        report = await create_report(api, **SEARCH)
        async with signed_in(one, account.api_key) as browser:
            cookie = browser.headers["Cookie"]
            assert account.api_key not in cookie
            async with httpx.AsyncClient(base_url=other, headers={"Cookie": cookie}) as copy:
                assert SIGNED_IN in (await copy.get("/")).text  # the same session, on another process
                assert await sessions_of(db, account.id) == 1

                signed_out = await browser.post("/sign-out")

                assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/")
                assert await sessions_of(db, account.id) == 0
                assert SIGN_IN_FORM in (await copy.get("/")).text
                for request in [("GET", "/reports/live"), ("POST", f"/reports/{report['id']}/delete")]:
                    response = await copy.request(*request)
                    assert (response.status_code, response.headers["location"]) == (303, "/"), request
                assert SIGN_IN_FORM in (await browser.get("/")).text
        assert (await api.get(f"/api/reports/{report['id']}")).status_code == 200  # the copy deleted nothing


async def test_revoking_or_rotating_a_key_ends_the_sessions_signed_in_with_it(
    paused_api: str, account: ApiAccount, db: Database
) -> None:
    async with httpx.AsyncClient(base_url=paused_api, headers=account.headers) as api:
        other = await make_key(api, "laptop")
        async with signed_in(paused_api, other["api_key"]) as laptop, signed_in(paused_api, account.api_key) as desk:
            assert await sessions_of(db, account.id) == 2
            assert (await api.delete(f"/api/keys/{other['id']}")).status_code == 204
            assert SIGN_IN_FORM in (await laptop.get("/")).text
            assert SIGNED_IN in (await desk.get("/")).text  # signed in with another key
            assert await sessions_of(db, account.id) == 1

            [(first_id, *_)] = await stored_keys(db, account.id)
            new_secret = (await api.post(f"/api/keys/{first_id}/rotate")).json()["api_key"]

            assert SIGN_IN_FORM in (await desk.get("/")).text
            assert await sessions_of(db, account.id) == 0
            old = await desk.post("/sign-in", data={"api_key": account.api_key})
            assert old.status_code == 400 and "That API key is not valid." in old.text
            assert (await desk.post("/sign-in", data={"api_key": new_secret})).status_code == 303
            assert SIGNED_IN in (await desk.get("/")).text


async def test_a_read_only_session_shows_reports_without_create_rerun_or_delete(
    api: str, client: httpx.AsyncClient
) -> None:
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])
    secret = (await make_key(client, "viewer", read_only=True))["api_key"]
    forbidden = "You signed in with a read-only API key: it shows reports, but cannot create, rerun or delete them."

    async with signed_in(api, secret) as viewer:
        listing = (await viewer.get("/")).text
        shown = await viewer.get(f"/reports/{report['id']}")
        attempts = {
            request: await viewer.request(*request)
            for request in [
                ("GET", "/reports/new"),
                ("POST", "/reports/new"),
                ("POST", f"/reports/{report['id']}/rerun"),
                ("GET", f"/reports/{report['id']}/delete"),
                ("POST", f"/reports/{report['id']}/delete"),
            ]
        }

    assert f'data-report-id="{report["id"]}"' in listing
    assert "You signed in with a read-only API key: you can open reports, not create, rerun or delete them." in listing
    assert not re.search(r"/reports/new|/rerun|/delete|New search", listing)
    assert shown.status_code == 200 and "Export CSV" in shown.text
    assert {request: response.status_code for request, response in attempts.items()} == dict.fromkeys(attempts, 403)
    assert all(forbidden in response.text for response in attempts.values())
    assert (await client.get(f"/api/reports/{report['id']}")).json() == report  # neither rerun nor deleted


async def test_signing_in_and_out_work_while_redis_is_down(
    database_url: str, logs: Path, account: ApiAccount, db: Database
) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    process, url = start_api(service_env(database_url, nobody_listens), logs, "sessions-without-redis", redis=False)
    try:
        async with signed_in(url, account.api_key) as browser:
            assert SIGNED_IN in (await browser.get("/")).text
            assert (await browser.post("/sign-out")).status_code == 303
            assert SIGN_IN_FORM in (await browser.get("/")).text
    finally:
        process.stop()
    assert await sessions_of(db, account.id) == 0


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def database_at_migration_6(path: Path, rows: list[tuple[str, tuple]]) -> None:
    """A database as migrations 001 to 006 left it (each account with its one `api_key_hash`), and `rows`."""
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for version, name, script in migration_files("sqlite"):
            if version <= 6:
                for statement in sqlite._statements(script):
                    connection.execute(statement)
                connection.execute("INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))", (version, name))
        for statement, parameters in rows:
            connection.execute(statement, parameters)


OLD_KEYS = {"Demo": "cr_demo_local_only_2b7f9d3c", "Acme": "cr_an_old_key_of_acme_made_before_007"}
CREATED_MS = 1_767_225_600_000  # 2026-01-01


async def test_migration_7_keeps_every_key_of_an_old_database_working(
    tmp_path: Path, redis_url: str, logs: Path
) -> None:
    path = tmp_path / "old.db"
    accounts = [
        ("INSERT INTO accounts (name, api_key_hash, created_at) VALUES (?, ?, ?)", (name, sha256(secret), CREATED_MS))
        for name, secret in OLD_KEYS.items()
    ]
    database_at_migration_6(
        path,
        [
            *accounts,
            ("INSERT INTO campaigns (account_id, id, name, channel) VALUES (2, 'spring', 'Spring', 'email')", ()),
            (
                "INSERT INTO reports (id, account_id, email, actions, start_at, end_at, include_archived, status,"
                " row_count, created_at, queued_at) VALUES ('old-report', 1, 'ann@example.com', ?, 0, 1, 0, 'done',"
                " 0, 0, 0)",
                ('["email.opened"]',),
            ),
        ],
    )

    process, url = start_api(service_env(f"sqlite:///{path}", redis_url), logs, "migrated-api")
    try:
        async with httpx.AsyncClient(base_url=url, headers=bearer(OLD_KEYS["Demo"])) as demo:
            assert (await demo.get("/api/reports/old-report")).json()["status"] == "done"
            demo_keys = (await demo.get("/api/keys")).json()
        async with httpx.AsyncClient(base_url=url, headers=bearer(OLD_KEYS["Acme"])) as acme:
            assert (await acme.get("/api/campaigns/spring")).json()["name"] == "Spring"
            assert (await acme.get("/api/reports/old-report")).status_code == 404
        async with signed_in(url, OLD_KEYS["Demo"]) as browser:
            assert "old-report" in (await browser.get("/")).text
    finally:
        process.stop()

    [key] = demo_keys["items"]
    assert re.fullmatch(r"[0-9a-f]{32}", key["id"])
    assert key == {
        "id": key["id"],
        "name": "default",
        "read_only": False,
        "prefix": None,
        "created_at": shown_ms(CREATED_MS),
    }
    db = await Database.open(f"sqlite:///{path}")
    try:
        columns = await db.fetch("SELECT name FROM pragma_table_info('accounts')")
        assert [column["name"] for column in columns] == ["id", "name", "created_at"]
        assert await db.fetch("PRAGMA foreign_key_check") == []
        with pytest.raises(ConstraintViolation, match="FOREIGN KEY"):  # references are checked again
            async with db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO campaigns (account_id, id, name, channel) VALUES (9, 'x', 'x', 'email')"
                )
    finally:
        await db.close()


async def test_a_migration_that_leaves_a_reference_to_nothing_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await (await Database.open(url)).close()
    broken = "INSERT INTO campaigns (account_id, id, name, channel) VALUES (404, 'orphan', 'x', 'email');"
    files = migration_files("sqlite")
    monkeypatch.setattr(sqlite, "migration_files", lambda backend: [*files, (999, "999_broken.sql", broken)])

    with pytest.raises(RuntimeError, match="migration 999_broken.sql leaves rows referring to nothing"):
        await Database.open(url)

    with closing(sqlite3.connect(tmp_path / "db.sqlite")) as connection:
        assert connection.execute("SELECT count(*) FROM campaigns").fetchone() == (0,)
        assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone() == (files[-1][0],)


async def test_another_accounts_key_is_404_and_keeps_working(
    client: httpx.AsyncClient, api: str, account: ApiAccount, db: Database, new_account
) -> None:
    theirs = await make_key(client, "theirs")
    intruder = await new_account()
    never = uuid.uuid4().hex

    async with httpx.AsyncClient(base_url=api, headers=intruder.headers) as other:
        answers = [
            await other.post(f"/api/keys/{theirs['id']}/rotate"),
            await other.delete(f"/api/keys/{theirs['id']}"),
            await other.delete(f"/api/keys/{never}"),
        ]
        listed = (await other.get("/api/keys")).json()["items"]

    assert [(response.status_code, response.json()) for response in answers] == [(404, NO_SUCH_KEY)] * 3
    assert [key["name"] for key in listed] == ["default"] and theirs["id"] not in str(listed)
    async with httpx.AsyncClient(base_url=api, headers=bearer(theirs["api_key"])) as owner:
        assert (await owner.get("/api/reports")).status_code == 200
    assert len(await stored_keys(db, account.id)) == 2
