"""What every command group of the HTTP API's client shares: --url and --api-key, the client, errors.

`contactreports report ...` (report.py) and `contactreports webhooks ...` (webhooks.py) talk to
a running service through client.py, never to the database, so they work against any deployment.
"""

from __future__ import annotations

import logging

import click
import msgspec

from contactreports.cli.client import DEFAULT_URL, ApiError, Client


class ApiGroup(click.Group):
    """Turns every ApiError of a subcommand into click's `Error: ...` and exit code 1; and gives every
    subcommand the group's --url and --api-key, so they work before or after its name."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params += [_after_the_subcommand(option) for option in self.params if option.name in CONNECTION]
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ApiError as error:
            raise click.ClickException(str(error)) from error


# The group's options that a subcommand takes too (`report list --url ...` as well as `report --url ... list`).
CONNECTION = ("url", "api_key")


def _after_the_subcommand(option: click.Option) -> click.Option:
    """The group's `option` for a subcommand: no default or variable of its own, so that it only
    overrides what the group found when it is given."""
    return click.Option(option.opts, help=option.help, expose_value=False, callback=_override)


def _override(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # The group's callback has run by then: a subcommand is parsed after its group is invoked.
    if value is not None:
        ctx.find_object(dict)[param.name] = value


def api_group(name: str, help_text: str) -> click.Group:
    """A command group whose commands call the API, with --url and --api-key (or their variables)
    before or after the subcommand."""

    @click.group(name, cls=ApiGroup, help=help_text)
    @click.option(
        "--url",
        envvar="CONTACTREPORTS_URL",
        default=DEFAULT_URL,
        show_default=True,
        help="The API (or CONTACTREPORTS_URL).",
    )
    @click.option(
        "--api-key", envvar="CONTACTREPORTS_API_KEY", help="The account's API key (or CONTACTREPORTS_API_KEY)."
    )
    @click.pass_context
    def group(ctx: click.Context, url: str, api_key: str | None) -> None:
        # The root command logs at INFO; httpx would log every request there.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        ctx.obj = {"url": url, "api_key": api_key}

    return group


def client_for(ctx: click.Context) -> Client:
    """The API client, made on first use so `--help` needs no key."""
    options = ctx.find_object(dict)
    if not options.get("api_key"):
        raise click.ClickException("no API key: set CONTACTREPORTS_API_KEY or pass --api-key")
    client = Client(options["url"], options["api_key"])
    ctx.call_on_close(client.close)
    return client


def json_text(value: object) -> str:
    return msgspec.json.encode(value).decode()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
