"""Campaigns: `PUT/GET /api/campaigns/{campaign_id}`, `GET /api/campaigns`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import Controller, Request, Response, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from contactreports.api.auth import SignedIn
from contactreports.api.errors import invalid, not_found, problem_responses
from contactreports.api.openapi import CampaignIdOperation
from contactreports.api.parameters import Cursor, Limit
from contactreports.api.schemas import CampaignIn, CampaignOut, CampaignPage
from contactreports.ingest import MAX_CAMPAIGN_ID
from contactreports.models import (
    CONTROL_CHARACTERS,
    CONTROL_CHARACTERS_IN_TEXT,
    OUT_OF_RANGE,
    TEXT_CONTROLS,
    Campaign,
    FieldError,
    control_characters_in,
    datetime_to_ms,
    format_ms,
    in_range,
)
from contactreports.store.campaigns import get_campaign, list_campaigns, put_campaign

CREATED = ResponseSpec(CampaignOut, description="Created", generate_examples=False)
# A handler's `requested_id`: the controller's dependency, requested_campaign_id.
RequestedId = NamedDependency[str]
CampaignIdText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CAMPAIGN_ID)]


def requested_campaign_id(request: Request, campaign_id: FromPath[Path]) -> str:
    """The campaign id a request's path names: the rest of the path after `/api/campaigns/`, as
    the client sent it, percent-decoded once; raises a 400 for one no campaign can have.

    An id may hold any character but a control character, and those webhooks make of a provider's
    tags hold `/`, `?`, `#`, `%` and spaces (`sendgrid:category:news/2026 spring?x#y`): a client
    percent-encodes the id as one path segment. ASGI servers decode `%2F` into `/` before the app
    sees the path, so the route takes the rest of the path (`campaign_id`, a `path` parameter);
    but Litestar's reading of it drops a final `/` and collapses `//`, so the id is read from the
    raw path, which keeps what the client sent. Litestar's reading serves for a path that does not
    start as the route's (`/api//campaigns/x`, which Litestar routes here too). (Taken here, it is
    also not added to the handlers' fields when Litestar makes the OpenAPI document, as a path
    parameter nothing takes is: every 400 after that would name it.)
    """
    prefix = request.scope["path_template"].partition("{")[0].encode()
    raw = request.scope.get("raw_path") or b""
    if raw.startswith(prefix):
        try:
            requested = unquote_to_bytes(raw[len(prefix) :]).decode()
        except UnicodeDecodeError:
            raise invalid([FieldError("campaign_id", "not valid UTF-8 once percent-decoded")]) from None
    else:
        requested = campaign_id.as_posix().removeprefix("/")
    try:
        msgspec.convert(requested, CampaignIdText)
    except msgspec.ValidationError as error:
        raise invalid([FieldError("campaign_id", str(error))]) from None
    if control_characters_in(requested):
        raise invalid([FieldError("campaign_id", CONTROL_CHARACTERS)])
    return requested


def campaign_out(campaign: Campaign) -> CampaignOut:
    sent_at = format_ms(campaign.sent_at) if campaign.sent_at is not None else None
    return CampaignOut(campaign.id, campaign.name, campaign.channel, sent_at, campaign.archived)


class CampaignController(Controller):
    path = "/campaigns"
    tags = ["campaigns"]
    dependencies = {"requested_id": Provide(requested_campaign_id, sync_to_thread=False)}

    @put(
        "/{campaign_id:path}",
        operation_id="putCampaign",
        responses={**problem_responses(403, 413, 503), 201: CREATED},
        operation_class=CampaignIdOperation,
        summary="Create or replace a campaign",
        description=(
            "`201` when new, `200` when replaced. Archiving moves the campaign's events out of the hot store; "
            "un-archiving moves them back."
        ),
    )
    async def replace(
        self, requested_id: RequestedId, data: JSONBody[CampaignIn], account: SignedIn, state: State
    ) -> Response[CampaignOut]:
        errors = []
        if control_characters_in(data.name, allowed=TEXT_CONTROLS):
            errors.append(FieldError("name", CONTROL_CHARACTERS_IN_TEXT))
        if data.sent_at is not None and not in_range(data.sent_at):
            errors.append(FieldError("sent_at", OUT_OF_RANGE))
        if errors:
            raise invalid(errors)
        sent_at = datetime_to_ms(data.sent_at) if data.sent_at is not None else None
        campaign = Campaign(requested_id, data.name, data.channel, sent_at, data.archived)
        created = await put_campaign(state.db, account.id, campaign)
        return Response(campaign_out(campaign), status_code=201 if created else 200)

    @get(
        "/{campaign_id:path}",
        operation_id="getCampaign",
        responses=problem_responses(404),
        operation_class=CampaignIdOperation,
        summary="A campaign",
    )
    async def read(self, requested_id: RequestedId, account: SignedIn, state: State) -> CampaignOut:
        campaign = await get_campaign(state.db, account.id, requested_id)
        if campaign is None:
            raise not_found("campaign")
        return campaign_out(campaign)

    @get("/", operation_id="listCampaigns", responses=problem_responses(), summary="Campaigns, by id")
    async def index(self, account: SignedIn, state: State, limit: Limit = 50, cursor: Cursor = None) -> CampaignPage:
        scope = f"campaigns:{account.id}"
        position = state.cursors.decode(scope, cursor)
        campaigns = await list_campaigns(state.db, account.id, position[0] if position else None, limit + 1)
        next_cursor = state.cursors.encode(scope, [campaigns[limit - 1].id]) if len(campaigns) > limit else None
        return CampaignPage([campaign_out(c) for c in campaigns[:limit]], next_cursor)
