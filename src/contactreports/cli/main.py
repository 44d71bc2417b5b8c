"""The `contactreports` command: up, serve, worker, accounts create|key, import; `report ...`
(report.py), `webhooks ...` (webhooks.py), `keys ...` (keys.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import msgspec

from contactreports.cli.keys import keys, print_made
from contactreports.cli.report import report
from contactreports.cli.webhooks import webhooks
from contactreports.config import ConfigError, Settings, load_settings

log = logging.getLogger("contactreports")


@click.group()
def main() -> None:
    """contactreports: what exactly happened with one contact."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


main.add_command(report)
main.add_command(webhooks)
main.add_command(keys)


def _settings(*, need_redis: bool = False) -> Settings:
    try:
        settings = load_settings()
    except ConfigError as error:
        raise click.ClickException(str(error)) from error
    if need_redis and settings.redis_url is None:
        raise click.ClickException(
            "REDIS_URL is not set: point it at a Redis server, or run `contactreports up`, which starts one of its own"
        )
    return settings


# Several API processes share one listening socket: the API is CPU-bound Python, one process
# uses at most one core, and the processes share all their state through SQLite and Redis.
workers_option = click.option(
    "--workers",
    type=click.IntRange(min=1),
    envvar="WEB_CONCURRENCY",
    default=1,
    show_default=True,
    help="API processes (or WEB_CONCURRENCY).",
)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, help="Defaults to PORT, else 8000.")
@workers_option
def serve(host: str, port: int | None, workers: int) -> None:
    """Run the HTTP API (needs REDIS_URL)."""
    from contactreports.server import serve_api

    settings = _settings(need_redis=True)
    serve_api(settings, host, port or settings.port, workers)


@main.command()
def worker() -> None:
    """Run the report worker (needs REDIS_URL); it comes back by itself if Redis goes away."""
    from contactreports.jobs.supervise import run_worker_forever

    run_worker_forever(_settings(need_redis=True))


@main.command()
def migrate() -> None:
    """Bring the database's schema up to date, then exit. `serve` and `worker` do it too as they
    start (processes starting at once wait for the first); this is for a deploy step of its own."""
    from contactreports.store.meta import schema_version

    click.echo(f"the database is at schema version {asyncio.run(_with_db(_settings(), schema_version))}")


@main.group()
def accounts() -> None:
    """Manage accounts."""


@accounts.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print only {account_id, api_key} as JSON.")
def create_account_command(name: str, as_json: bool) -> None:
    """Create an account and print its API key (shown this once)."""
    from contactreports.store.accounts import create_account

    account, api_key = asyncio.run(_with_db(_settings(), lambda db: create_account(db, name)))
    if as_json:
        click.echo(msgspec.json.encode({"account_id": str(account.id), "api_key": api_key}).decode())
    else:
        click.echo(f"account {account.id} ({account.name}); API key: {api_key}")


def _key_name(ctx: click.Context, param: click.Parameter, name: str) -> str:
    """--name, checked as the API checks a key's name, and trimmed."""
    from contactreports.models import key_name_problem

    if problem := key_name_problem(name):
        raise click.BadParameter(problem)
    return name.strip()


@accounts.command("key")
@click.argument("account_id", type=int)
@click.option("--name", default="recovery", show_default=True, callback=_key_name, help="The key's name.")
@click.option("--read-only", is_flag=True, help="A key that may only read.")
@click.option("--json", "as_json", is_flag=True, help="Print the key as `POST /api/keys` answers it.")
def add_key_command(account_id: int, name: str, read_only: bool, as_json: bool) -> None:
    """A new API key for ACCOUNT_ID, made in the database (for an account that lost its keys);
    prints its secret (shown this once). Over the API: `contactreports keys create`."""
    from contactreports.api.keys import key_made
    from contactreports.store.accounts import account_exists, add_api_key

    async def add(db):
        if not await account_exists(db, account_id):
            raise click.ClickException(f"no account {account_id}")
        return await add_api_key(db, account_id, name, read_only=read_only)

    print_made(key_made(*asyncio.run(_with_db(_settings(), add))), as_json)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--account", "account_id", type=int, required=True, help="The account's id.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["ndjson", "csv"]),
    help="Defaults to the file's extension (.csv, else NDJSON).",
)
def import_command(file: Path, account_id: int, file_format: str | None) -> None:
    """Import events (NDJSON or CSV, the POST /api/events shape): all checked first, then stored."""
    from contactreports.cli.importer import import_file

    file_format = file_format or ("csv" if file.suffix.lower() == ".csv" else "ndjson")
    settings = _settings()
    asyncio.run(
        _with_db(
            settings,
            lambda db: import_file(db, account_id, file, file_format, settings.max_details_bytes),
            bulk=True,
        )
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, help="Defaults to PORT, else 8000.")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Seed a demo account into an empty database.")
@workers_option
def up(host: str, port: int | None, demo: bool, workers: int) -> None:
    """Run everything: the API, a worker, and an embedded Redis when REDIS_URL is unset."""
    from contactreports.cli.embedded_redis import embedded_redis
    from contactreports.server import serve_api

    settings = _settings()
    port = port or settings.port
    seeded = asyncio.run(_with_db(settings, lambda db: _prepare(db, demo)))
    redis = contextlib.ExitStack()
    if settings.redis_url is None:
        redis_url = redis.enter_context(embedded_redis())
        os.environ["REDIS_URL"] = redis_url  # for the worker and every API process
        log.info("started an embedded Redis at %s", redis_url)
    worker_process = subprocess.Popen([sys.executable, "-m", "contactreports", "worker"])
    log.info("started a worker (pid %s)", worker_process.pid)
    # Until the server takes SIGTERM over (and after it returns), exit through `finally`, or
    # the worker and the embedded Redis would outlive us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _print_welcome(f"http://{host}:{port}", seeded)
        serve_api(settings, host, port, workers)
    finally:
        worker_process.terminate()
        worker_process.wait()
        redis.close()


async def _prepare(db, demo: bool) -> bool:
    """Migrate, and seed the demo account into an empty database; True if it has the demo."""
    from contactreports.cli.demo import DEMO_API_KEY, seed_demo
    from contactreports.store.accounts import account_for_key, count_accounts

    if demo and await count_accounts(db) == 0:
        started = time.perf_counter()
        events = await seed_demo(db)
        log.info("seeded the demo account: %s events in %.1f s", f"{events:,}", time.perf_counter() - started)
    return await account_for_key(db, DEMO_API_KEY) is not None


def _print_welcome(url: str, has_demo: bool) -> None:
    from contactreports.cli.demo import DEMO_API_KEY, DEMO_CONTACT, demo_search

    click.echo(f"\ncontactreports is running at {url}  (API docs: {url}/schema)")
    if has_demo:
        click.echo(f"Demo API key: {DEMO_API_KEY}\nTry a report on {DEMO_CONTACT}:\n")
        click.echo(
            f"  curl -s -X POST {url}/api/reports -H 'Authorization: Bearer {DEMO_API_KEY}' \\\n"
            "    -H 'Content-Type: application/json' \\\n"
            f"    -d '{json.dumps(demo_search(datetime.now(UTC)))}'\n"
        )
    click.echo("Press Ctrl+C to stop.\n")


async def _with_db(settings: Settings, action, *, bulk: bool = False):
    from contactreports.store.database import open_database

    db = await open_database(settings, bulk=bulk)
    try:
        return await action(db)
    finally:
        await db.close()
