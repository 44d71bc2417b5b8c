"""The `contactreports` command: accounts, import, and `up` with the README's tour."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import httpx
import msgspec
import psutil
import pytest

from conftest import DEADLINE_SECONDS, ApiAccount, service_env, wait_healthy
from contactreports.cli import importer
from contactreports.cli.embedded_redis import free_port
from contactreports.cli.importer import BATCH as IMPORT_BATCH
from contactreports.cli.report import FINISHED
from contactreports.config import Settings
from contactreports.store.database import Database, migration_files
from helpers import all_rows, create_report, oracle, put_campaign, wait_done

README = Path(__file__).parents[1] / "README.md"
SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


def contactreports(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "contactreports", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_accounts_create_json_prints_only_the_account_and_its_key(database_url: str, redis_url: str, api: str) -> None:
    result = contactreports("accounts", "create", "Acme", "--json", env=service_env(database_url, redis_url))

    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"account_id", "api_key"}
    assert result.stdout == json.dumps(created, separators=(",", ":")) + "\n"
    response = httpx.get(f"{api}/api/reports", headers={"Authorization": f"Bearer {created['api_key']}"})
    assert response.status_code == 200


def test_migrate_brings_the_database_to_the_last_schema_version(database_url: str, redis_url: str) -> None:
    last = migration_files("sqlite")[-1][0]
    assert last == migration_files("postgresql")[-1][0]  # both backends number their migrations alike

    result = contactreports("migrate", env=service_env(database_url, redis_url))

    assert (result.returncode, result.stdout) == (0, f"the database is at schema version {last}\n"), result.stderr


def test_accounts_key_gives_an_account_that_lost_its_keys_a_new_one(
    database_url: str, redis_url: str, api: str, account: ApiAccount
) -> None:
    env = service_env(database_url, redis_url)

    made = contactreports("accounts", "key", str(account.id), "--name", "rescue", "--json", env=env)
    read_only = contactreports("accounts", "key", str(account.id), "--read-only", env=env)
    unknown = contactreports("accounts", "key", "999999", env=env)
    blank = contactreports("accounts", "key", str(account.id), "--name", " ", env=env)

    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert (key["name"], key["read_only"], key["prefix"]) == ("rescue", False, key["api_key"][:10])
    shown = re.fullmatch(
        r"key:     (\w+) \(recovery, read-only\)\nAPI key: (cr_\S+)\n\(shown this once\)\n", read_only.stdout
    )
    assert shown is not None, read_only.stdout + read_only.stderr
    response = httpx.get(f"{api}/api/keys", headers={"Authorization": f"Bearer {key['api_key']}"})
    assert [(item["id"], item["name"], item["read_only"]) for item in response.json()["items"]] == [
        (response.json()["items"][0]["id"], "default", False),
        (key["id"], "rescue", False),
        (shown[1], "recovery", True),
    ]
    viewer = httpx.get(f"{api}/api/reports", headers={"Authorization": f"Bearer {shown[2]}"})
    assert viewer.status_code == 200
    assert (unknown.returncode, unknown.stderr) == (1, "Error: no account 999999\n")
    assert blank.returncode == 2 and "Invalid value for '--name': must not be blank" in blank.stderr


async def test_import_ndjson_and_csv_then_report_on_them(
    client: httpx.AsyncClient, account, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    await put_campaign(client, "spring", "Spring sale")
    ndjson_events = [
        {
            "id": f"n{n}",
            "email": "Ann@Example.com",
            "action": "email.opened",
            "occurred_at": f"2026-03-01T10:{n:02d}:00Z",
            "campaign_id": "spring",
        }
        for n in range(30)
    ]
    (tmp_path / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in ndjson_events))
    (tmp_path / "events.csv").write_text(
        "email,action,occurred_at,id,campaign_id,details\n"
        'ann@example.com,email.clicked,2026-03-02T10:00:00Z,c1,,"{""url"": ""https://x.example""}"\n'
        "ann@example.com,email.clicked,2026-03-02T11:00:00+01:00,c2,spring,\n"
        "ann@example.com,email.opened,2026-03-01T10:00:00Z,n0,spring,\n"
    )  # a duplicate of an NDJSON id
    env = service_env(database_url, redis_url)

    ndjson = contactreports("import", str(tmp_path / "events.ndjson"), "--account", str(account.id), env=env)
    csv = contactreports("import", str(tmp_path / "events.csv"), "--account", str(account.id), env=env)

    assert ndjson.returncode == 0, ndjson.stderr
    assert re.search(r"imported 30 events \(0 duplicates skipped\) in [\d.]+ s: [\d,]+ events/s", ndjson.stdout)
    assert csv.returncode == 0, csv.stderr
    assert "imported 2 events (1 duplicates skipped)" in csv.stdout
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])
    csv_events = [
        {
            "id": "c1",
            "email": "ann@example.com",
            "action": "email.clicked",
            "occurred_at": "2026-03-02T10:00:00Z",
            "details": {"url": "https://x.example"},
        },
        {
            "id": "c2",
            "email": "ann@example.com",
            "action": "email.clicked",
            "occurred_at": "2026-03-02T11:00:00+01:00",
            "campaign_id": "spring",
        },
    ]
    assert await all_rows(client, report["id"]) == oracle(
        ndjson_events + csv_events,
        {"spring": {"name": "Spring sale", "archived": False}},
        email="ann@example.com",
        actions=["email.opened", "email.clicked"],
        start=SEARCH["start"],
        end=SEARCH["end"],
    )


async def test_an_invalid_import_names_the_event_and_stores_nothing(
    account, db: Database, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    good = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T10:00:00Z"}
    past_a_batch = IMPORT_BATCH + 2_000  # an error past the first batch is still named by its line
    lines = [good] * past_a_batch + [{**good, "action": "email.lost"}]
    (tmp_path / "bad.ndjson").write_text("".join(json.dumps(e) + "\n" for e in lines))
    (tmp_path / "broken.ndjson").write_text(
        "\n".join([json.dumps(good)] * past_a_batch + ["{not json", json.dumps(good)])
    )
    (tmp_path / "unknown.ndjson").write_text(json.dumps({**good, "campaign_id": "nope"}) + "\n")
    env = service_env(database_url, redis_url)

    bad = contactreports("import", str(tmp_path / "bad.ndjson"), "--account", str(account.id), env=env)
    broken = contactreports("import", str(tmp_path / "broken.ndjson"), "--account", str(account.id), env=env)
    unknown = contactreports("import", str(tmp_path / "unknown.ndjson"), "--account", str(account.id), env=env)
    nobody = contactreports("import", str(tmp_path / "bad.ndjson"), "--account", "999999", env=env)

    bad_line = past_a_batch + 1  # the file's lines count from 1
    assert (broken.returncode, broken.stderr[broken.stderr.index("Error: ") :]) == (
        1,
        f"Error: invalid events, nothing was stored:\n  line {bad_line}: not valid JSON: "
        "JSON is malformed: object keys must be strings (byte 1)\n",
    )
    assert (bad.returncode, bad.stderr[bad.stderr.index("Error: ") :]) == (
        1,
        f"Error: invalid events, nothing was stored:\n  line {bad_line}: action: unknown action 'email.lost'; "
        "see GET /api/actions\n",
    )
    assert unknown.returncode == 1
    assert "unknown campaigns, nothing was stored: nope" in unknown.stderr
    assert nobody.returncode == 1
    assert "no account 999999" in nobody.stderr
    assert await stored_events(db, account.id) == 0


def test_import_errors_name_the_line_an_editor_shows(
    account, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A CSV file's header is its line 1; blank lines count, and a row is named by the line it starts on
    (a quoted value may go on over several lines)."""
    (tmp_path / "events.csv").write_text(
        "email,action,occurred_at,details\n"
        "ann@example.com,email.opened,2026-03-01T10:00:00Z,\n"
        "\n"
        'ann@example.com,email.clicked,2026-03-01T10:00:00Z,"{""note"":\n'
        '""two lines""}"\n'
        "nobody,email.opened,2026-03-01T10:00:00Z,\n"
        "ann@example.com,email.lost,2026-03-01T10:00:00Z,\n"
    )
    (tmp_path / "events.ndjson").write_text(
        '{"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T10:00:00Z"}\n'
        "\n"
        '{"email": "ann@example.com", "action": "email.opened"}\n'
    )
    env = service_env(database_url, redis_url)

    csv = contactreports("import", str(tmp_path / "events.csv"), "--account", str(account.id), env=env)
    ndjson = contactreports("import", str(tmp_path / "events.ndjson"), "--account", str(account.id), env=env)

    assert (csv.returncode, csv.stderr[csv.stderr.index("Error: ") :]) == (
        1,
        "Error: invalid events, nothing was stored:\n"
        "  line 6: email: not an email address\n"
        "  line 7: action: unknown action 'email.lost'; see GET /api/actions\n",
    )
    assert (ndjson.returncode, ndjson.stderr[ndjson.stderr.index("Error: ") :]) == (
        1,
        "Error: invalid events, nothing was stored:\n"
        "  line 3: occurred_at: Object missing required field `occurred_at`\n",
    )


def test_import_progress_counts_events_as_people_read_numbers(
    account, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    event = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T10:00:00Z"}
    (tmp_path / "events.ndjson").write_text(json.dumps(event) + "\n")

    result = contactreports(
        "import",
        str(tmp_path / "events.ndjson"),
        "--account",
        str(account.id),
        env=service_env(database_url, redis_url),
    )

    assert result.returncode == 0, result.stderr
    shown = [state.strip() for state in re.split(r"[\r\n]", result.stderr) if state.strip()]
    checking = [state for state in shown if state.startswith("checking")]
    importing = [state for state in shown if state.startswith("importing")]
    assert checking and all(re.fullmatch(r"checking: [01] events \[00:0\d\]", state) for state in checking)
    assert re.fullmatch(r"importing: 100%\|█{10}\| 1/1 events \[00:0\d<00:00\]", importing[-1])
    assert len(checking) + len(importing) == len(shown)


@pytest.mark.parametrize("kept_bytes", [importer.KEPT_BYTES, 0], ids=["kept from pass 1", "read again"])
async def test_an_import_stores_the_same_whether_pass_1_kept_the_events_or_not(
    db: Database, new_account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, kept_bytes: int
) -> None:
    monkeypatch.setattr(importer, "KEPT_BYTES", kept_bytes)
    account = await new_account()
    good = {"email": " Ann@Example.com", "action": "email.opened", "occurred_at": "2026-03-01T10:00:00+01:00"}
    lines = [{**good, "id": "a"}, {**good, "id": "b", "details": {"url": "x"}}, {**good, "id": "a"}]
    (tmp_path / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in lines))

    await importer.import_file(db, account.id, tmp_path / "events.ndjson", "ndjson", max_details_bytes=1_000)

    assert "imported 2 events (1 duplicates skipped)" in capsys.readouterr().out
    rows = await db.fetch(
        "SELECT email, occurred_at, action, details FROM events WHERE account_id = :account_id ORDER BY seq",
        {"account_id": account.id},
    )
    assert [(row["email"], row["occurred_at"], row["action"], row["details"]) for row in rows] == [
        ("ann@example.com", 1772355600000, 3, None),
        ("ann@example.com", 1772355600000, 3, '{"url":"x"}'),
    ]


async def stored_events(db: Database, account_id: int) -> int:
    return await db.fetch_value(
        "SELECT count(*) FROM events WHERE account_id = :account_id", {"account_id": account_id}
    )


@pytest.mark.parametrize("kept_bytes", [importer.KEPT_BYTES, 0], ids=["fits in memory", "too large to keep"])
async def test_a_pipe_is_imported_if_its_events_fit_in_memory_else_refused(
    db: Database, new_account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept_bytes: int
) -> None:
    """A pipe cannot be read a second time, so pass 2 can only store what pass 1 kept."""
    monkeypatch.setattr(importer, "KEPT_BYTES", kept_bytes)
    account = await new_account()
    pipe = tmp_path / "events.pipe"
    os.mkfifo(pipe)
    event = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T10:00:00Z"}
    writer = threading.Thread(target=pipe.write_text, args=(json.dumps(event) + "\n",))
    writer.start()

    try:
        await importer.import_file(db, account.id, pipe, "ndjson", max_details_bytes=1_000)
        outcome = "imported"
    except click.ClickException as error:
        outcome = error.message
    writer.join(timeout=DEADLINE_SECONDS)

    if kept_bytes:
        assert (outcome, await stored_events(db, account.id)) == ("imported", 1)
    else:
        assert (outcome, await stored_events(db, account.id)) == (
            f"{pipe} is not a regular file and holds more events than an import keeps in memory (0 MB): "
            "save it to a file and import that; nothing was stored",
            0,
        )


async def test_a_file_changed_between_the_check_and_the_storing_is_refused_whole(
    db: Database, new_account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read again for pass 2 (too large to keep), the file must be the one pass 1 checked."""
    monkeypatch.setattr(importer, "KEPT_BYTES", 0)
    account = await new_account()
    path = tmp_path / "events.ndjson"
    event = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T10:00:00Z"}
    path.write_text(json.dumps(event) + "\n")
    known_campaign_ids = importer.known_campaign_ids

    async def another_process_appends_meanwhile(*args):  # runs between the two passes
        with path.open("a") as file:
            file.write('{"email": "not an email"}\n')
        return await known_campaign_ids(*args)

    monkeypatch.setattr(importer, "known_campaign_ids", another_process_appends_meanwhile)

    with pytest.raises(click.ClickException) as refused:
        await importer.import_file(db, account.id, path, "ndjson", max_details_bytes=1_000)

    assert refused.value.message == f"{path} changed while it was being checked; nothing was stored"
    assert await stored_events(db, account.id) == 0


def readme_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    first, second = (block.strip() for block in readme_blocks()[:2])
    ci = (README.parent / ".ci" / "run").read_text()

    assert first.endswith("contactreports up")
    assert second.endswith("pytest")
    assert second in ci.splitlines()
    # What the examples after them need in a new shell (test_up_... runs them so).
    assert "`. .venv/bin/activate`" in README.read_text()


def test_the_readme_links_only_to_files_in_the_repository() -> None:
    links = [link for link in re.findall(r"\]\(([^)#]+)\)", README.read_text()) if "://" not in link]

    assert "docs/openapi.json" in links
    assert [link for link in links if not (README.parent / link).is_file()] == []


def in_a_new_shell(commands: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`commands` as the README says to run them in another shell: with the virtual environment active."""
    activate = Path(sys.prefix) / "bin" / "activate"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", f". {activate}\n{commands}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_up_serves_the_demo_and_the_readme_tour_welcome_and_cli_work_as_printed(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "PORT", "VIRTUAL_ENV") and not k.startswith("CONTACTREPORTS_")
    }
    # Not the test runner's python: the README's `. .venv/bin/activate` puts `contactreports` on the PATH.
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if Path(d) != Path(sys.executable).parent)
    folder, shell, temporary = tmp_path / "up", tmp_path / "shell", tmp_path / "tmp"
    for directory in (folder, shell, temporary):
        directory.mkdir()
    port = free_port()
    started = time.monotonic()
    with (tmp_path / "up.log").open("w") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "contactreports", "up", "--port", str(port)],
            cwd=folder,
            env={**env, "TMPDIR": str(temporary)},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, up, timeout=DEADLINE_SECONDS * 3)  # it seeds the demo first
        startup_seconds = time.monotonic() - started
        welcome = (tmp_path / "up.log").read_text()
        welcome_curl = re.search(r"\n(  curl .*?)\n\n", welcome, re.DOTALL)[1]
        tried = in_a_new_shell(welcome_curl, shell, env)
        headers = {"Authorization": "Bearer cr_demo_local_only_2b7f9d3c"}
        welcome_report = wait_for_report(base, json.loads(tried.stdout)["id"], headers)
        tour = readme_blocks()[2].replace("BASE=http://127.0.0.1:8000", f"BASE={base}")
        toured = in_a_new_shell(tour, shell, env)
        cli = in_a_new_shell(readme_blocks()[3], shell, {**env, "CONTACTREPORTS_URL": base})
    finally:
        up.send_signal(signal.SIGTERM)  # what a process manager sends
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
    output = (tmp_path / "up.log").read_text()

    print(f"demo start-up: {startup_seconds:.1f} s")
    assert "Demo API key: cr_demo_local_only_2b7f9d3c" in output
    assert (tried.returncode, welcome_report["status"]) == (0, "done") and welcome_report["row_count"] > 20
    assert toured.returncode == 0, toured.stderr
    outputs = toured.stdout.splitlines()
    done = json.loads(outputs[0])
    assert done["status"] == "done" and done["row_count"] == welcome_report["row_count"]
    clicks = json.loads(outputs[1])["items"]
    assert clicks and {row["action"] for row in clicks} == {"email.clicked"}
    assert outputs[2] == "timestamp,campaign,action,details"  # and two rows: `head -3`
    assert json.loads(outputs[5])["status"] == "queued"
    assert outputs[6] == "204"
    assert len(outputs) == 7
    assert cli.returncode == 0, cli.stderr
    # The reports' rows as tables: the search of 40 weeks, the one of the last 30 days, its clicks, its re-run.
    tables = [int(n or 0) for n in re.findall(r"^\((\d+) rows?\)$|^\(no rows\)$", cli.stdout, re.MULTILINE)]
    assert len(tables) == 4 and tables[0] > 0 and tables[1] > 0 and tables[3] == tables[1], cli.stdout
    assert up.returncode == 0
    redis_port = int(re.search(r"embedded Redis at redis://127.0.0.1:(\d+)", output)[1])
    with socket.socket() as probe:  # the embedded Redis stopped with `up`
        assert probe.connect_ex(("127.0.0.1", redis_port)) != 0
    worker_pid = int(re.search(r"started a worker \(pid (\d+)\)", output)[1])
    with pytest.raises(ProcessLookupError):  # and so did its worker (reaped by `up`)
        os.kill(worker_pid, 0)
    # Nothing is left in the user's folder but the database; Redis's temporary folder is gone.
    assert {path.name for path in folder.iterdir()} <= {
        "contactreports.db",
        "contactreports.db-wal",
        "contactreports.db-shm",
    }
    assert (folder / "contactreports.db").exists()
    assert list(temporary.iterdir()) == []


def wait_for_report(base: str, report_id: str, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (report := httpx.get(f"{base}/api/reports/{report_id}", headers=headers).json())["status"] not in FINISHED:
        assert time.monotonic() < deadline, report
        time.sleep(0.05)
    return report


def test_serve_with_two_workers_answers_from_both_and_stops_whole(
    database_url: str, redis_url: str, account: ApiAccount, tmp_path: Path
) -> None:
    """Each request on a new connection, so both processes serve some: every one knows the account's
    key and accepts a cursor the other process gave (keys, cursor secret: all in SQLite)."""
    port = free_port()
    command = [sys.executable, "-m", "contactreports", "serve", "--port", str(port), "--workers", "2"]
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(command, env=service_env(database_url, redis_url), stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, serve)
        workers = psutil.Process(serve.pid).children()
        for n in range(3):
            put = httpx.put(
                f"{base}/api/campaigns/c{n}", json={"name": f"C{n}", "channel": "email"}, headers=account.headers
            )
            assert put.status_code == 201, put.text
        seen, cursor = [], None
        for _ in range(4):
            params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{base}/api/campaigns", params=params, headers=account.headers)
            assert page.status_code == 200, page.text
            seen += [campaign["id"] for campaign in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=DEADLINE_SECONDS)

    assert len(workers) == 2
    assert sorted(seen) == ["c0", "c1", "c2"] and cursor is None
    _, alive = psutil.wait_procs(workers, timeout=DEADLINE_SECONDS)
    assert alive == []


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_that_cannot_start_exits_non_zero(workers: str, tmp_path: Path) -> None:
    """A process manager restarts or alerts on a failed exit, and must not restart a server that
    cannot start in a loop unnoticed: Granian exits 1 once its workers cannot start."""
    unopenable = tmp_path / "not-a-directory"
    unopenable.write_text("")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{unopenable}/x.db", "REDIS_URL": "redis://127.0.0.1:1"}

    serve = contactreports("serve", "--port", str(free_port()), "--workers", workers, env=env, cwd=tmp_path)

    assert serve.returncode == 1, serve.stderr


def test_bad_configuration_is_a_clear_error(database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORT")}

    no_redis = contactreports("worker", env={**env, "DATABASE_URL": database_url}, cwd=tmp_path)
    bad_port = contactreports("serve", env={**env, "REDIS_URL": "redis://127.0.0.1:1", "PORT": "eighty"}, cwd=tmp_path)
    bad_db = contactreports("accounts", "create", "x", env={**env, "DATABASE_URL": "mysql://db/x"}, cwd=tmp_path)
    no_jobs = contactreports(
        "worker", env={**env, "REDIS_URL": "redis://127.0.0.1:1", "CONTACTREPORTS_MAX_JOBS": "0"}, cwd=tmp_path
    )

    assert (no_redis.returncode, no_redis.stderr) == (
        1,
        "Error: REDIS_URL is not set: point it at a Redis server, "
        "or run `contactreports up`, which starts one of its own\n",
    )
    assert (bad_port.returncode, bad_port.stderr) == (
        1,
        "Error: bad setting: Expected `int`, got `str` - at `$.port`\n",
    )
    assert (bad_db.returncode, bad_db.stderr) == (
        1,
        "Error: unsupported DATABASE_URL 'mysql://db/x': expected sqlite:///path or postgresql://user@host/database\n",
    )
    assert (no_jobs.returncode, no_jobs.stderr) == (1, "Error: bad setting: max_jobs must be at least 1, got 0\n")


@pytest.mark.parametrize("name", ["max_jobs", "chunk_rows", "webhook_signatures_kept"])
def test_counts_that_must_be_positive_refuse_zero(name: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"^{name} must be at least 1, got 0$"):
        msgspec.convert({name: 0}, Settings)


def test_the_readme_lists_every_setting_with_its_default() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \|", README.read_text(), re.MULTILINE)
    table = {name: default.strip("`") for name, default in rows}
    plain = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL", "port": "PORT"}
    defaults = Settings()

    for field in Settings.__struct_fields__:
        name = plain.get(field, f"CONTACTREPORTS_{field.upper()}")
        assert name in table, f"{name} is not in the README's configuration table"
        if field not in plain:
            assert table[name] == str(getattr(defaults, field)), name
    assert table["DATABASE_URL"] == defaults.database_url
