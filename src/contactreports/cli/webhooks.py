"""`contactreports webhooks ...`: the account's webhook token and each provider's secret, over HTTP."""

from __future__ import annotations

import sys
import textwrap

import click

from contactreports.cli.api_group import api_group, client_for, json_option, json_text

webhooks = api_group("webhooks", "Webhooks from email platforms: the token in their URLs, and each one's secret.")


@webhooks.command("token")
@json_option
@click.pass_context
def token(ctx, as_json) -> None:
    """A new webhook token and each provider's URL (a token made before stops working)."""
    made = client_for(ctx).rotate_webhook_token()
    if as_json:
        click.echo(json_text(made))
        return
    click.echo(f"token: {made.token}\n(shown this once; a token made before no longer works)\n")
    click.echo("The URL to paste into each provider's dashboard:")
    width = max(map(len, made.urls))
    for name, url in made.urls.items():
        click.echo(f"  {name:<{width}}  {url}")


@webhooks.command("list")
@json_option
@click.pass_context
def list_webhooks(ctx, as_json) -> None:
    """The token's date, and each provider's secret: set or not, and what it is."""
    overview = client_for(ctx).webhooks()
    if as_json:
        click.echo(json_text(overview))
        return
    made = f"made {overview.token_created_at}" if overview.has_token else "none (`contactreports webhooks token`)"
    click.echo(f"token: {made}")
    width = max(len(provider.name) for provider in overview.providers)
    for provider in overview.providers:
        state = f"secret set {provider.updated_at}" if provider.configured else "no secret"
        click.echo(f"\n{provider.name:<{width}}  {state}")
        click.echo(textwrap.fill(provider.secret_help, width=100, initial_indent="  ", subsequent_indent="  "))


@webhooks.command("set")
@click.argument("provider")
@click.argument("secret")
@click.pass_context
def set_secret(ctx, provider, secret) -> None:
    """Set PROVIDER's SECRET (`list` says what it is).

    SECRET `-` reads it from the first line of stdin, which keeps it out of the shell's history."""
    if secret == "-":
        secret = sys.stdin.readline().rstrip("\r\n")
    configured = client_for(ctx).set_webhook_secret(provider, secret)
    click.echo(f"{configured.name}: secret set {configured.updated_at}")


@webhooks.command("unset")
@click.argument("provider")
@click.pass_context
def unset_secret(ctx, provider) -> None:
    """Remove PROVIDER's secret: its deliveries are refused from now on."""
    client_for(ctx).delete_webhook_secret(provider)
    click.echo(f"{provider}: no secret; its deliveries are refused from now on")
