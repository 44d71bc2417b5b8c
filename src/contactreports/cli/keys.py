"""`contactreports keys ...`: the account's API keys over HTTP: list, create, rotate and revoke them.

Like every key call of the API, these need a full-access key. A secret is printed once, when
made; `contactreports accounts key` (main.py) makes one from the database for an account that
lost all of its keys.
"""

from __future__ import annotations

import click

from contactreports.api.schemas import ApiKeyMade
from contactreports.cli.api_group import api_group, client_for, json_option, json_text

keys = api_group("keys", "The account's API keys (with a full-access key): list, create, rotate, revoke.")
KEY_ID_WIDTH = 32  # the API's key ids: 32 hex digits


def access(read_only: bool) -> str:
    return "read-only" if read_only else "full access"


def print_made(made: ApiKeyMade, as_json: bool, note: str = "") -> None:
    """A key with its new secret: for people, with `note` on what it means; or as the API's JSON."""
    if as_json:
        click.echo(json_text(made))
        return
    click.echo(f"key:     {made.id} ({made.name}, {access(made.read_only)})")
    click.echo(f"API key: {made.api_key}")
    click.echo(f"(shown this once{note})")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON key per line.")
@click.pass_context
def list_keys(ctx, as_json) -> None:
    """The account's keys, oldest first: never their secrets, only their first characters."""
    for count, key in enumerate(client_for(ctx).keys(), start=1):
        if as_json:
            click.echo(json_text(key))
            continue
        if count == 1:
            click.echo(f"{'id':<{KEY_ID_WIDTH}}  {'access':<11}  {'prefix':<10}  {'created':<24}  name")
        prefix = key.prefix or "-"
        line = f"{key.id:<{KEY_ID_WIDTH}}  {access(key.read_only):<11}  {prefix:<10}  {key.created_at:<24}  {key.name}"
        click.echo(line)


@keys.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="A key that may only read (GET): no reports made, nothing changed.")
@json_option
@click.pass_context
def create(ctx, name, read_only, as_json) -> None:
    """Create a key named NAME and print its secret (shown this once)."""
    print_made(client_for(ctx).create_key(name, read_only=read_only), as_json)


@keys.command("rotate")
@click.argument("key_id")
@json_option
@click.pass_context
def rotate(ctx, key_id, as_json) -> None:
    """A new secret for the key KEY_ID; the old one stops working at once."""
    print_made(client_for(ctx).rotate_key(key_id), as_json, "; the key's previous secret no longer works")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def revoke(ctx, key_id) -> None:
    """Revoke the key KEY_ID: it stops working at once (not the account's last full-access key)."""
    client_for(ctx).revoke_key(key_id)
    click.echo(f"revoked key {key_id}: it no longer works")
