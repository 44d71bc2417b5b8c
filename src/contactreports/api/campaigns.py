"""Campaigns: `PUT/GET /api/campaigns/{campaign_id}`, `GET /api/campaigns`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, put
from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from contactreports.api.auth import SignedIn
from contactreports.api.errors import invalid, not_found, problem_responses
from contactreports.api.pagination import Cursor, Limit, Page
from contactreports.api.schemas import CampaignIn, CampaignOut
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
CampaignId = Annotated[
    str,
    Parameter(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$", examples=[Example(value="spring-sale")]),
]


def campaign_out(campaign: Campaign) -> CampaignOut:
    sent_at = format_ms(campaign.sent_at) if campaign.sent_at is not None else None
    return CampaignOut(campaign.id, campaign.name, campaign.channel, sent_at, campaign.archived)


class CampaignController(Controller):
    path = "/campaigns"
    tags = ["campaigns"]

    @put(
        "/{campaign_id:str}",
        responses={**problem_responses(403, 413, 503), 201: CREATED},
        summary="Create or replace a campaign",
        description=(
            "`201` when new, `200` when replaced. Archiving moves the campaign's events out of the hot store; "
            "un-archiving moves them back."
        ),
    )
    async def replace(
        self, campaign_id: CampaignId, data: JSONBody[CampaignIn], account: SignedIn, state: State
    ) -> Response[CampaignOut]:
        errors = []
        # The path pattern documents the rule, but lets C1 controls and a final newline through.
        if control_characters_in(campaign_id):
            errors.append(FieldError("campaign_id", CONTROL_CHARACTERS))
        if control_characters_in(data.name, allowed=TEXT_CONTROLS):
            errors.append(FieldError("name", CONTROL_CHARACTERS_IN_TEXT))
        if data.sent_at is not None and not in_range(data.sent_at):
            errors.append(FieldError("sent_at", OUT_OF_RANGE))
        if errors:
            raise invalid(errors)
        sent_at = datetime_to_ms(data.sent_at) if data.sent_at is not None else None
        campaign = Campaign(campaign_id, data.name, data.channel, sent_at, data.archived)
        created = await put_campaign(state.db, account.id, campaign)
        return Response(campaign_out(campaign), status_code=201 if created else 200)

    @get("/{campaign_id:str}", responses=problem_responses(404), summary="A campaign")
    async def read(self, campaign_id: CampaignId, account: SignedIn, state: State) -> CampaignOut:
        campaign = await get_campaign(state.db, account.id, campaign_id)
        if campaign is None:
            raise not_found("campaign")
        return campaign_out(campaign)

    @get("/", responses=problem_responses(), summary="Campaigns, by id")
    async def index(
        self, account: SignedIn, state: State, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[CampaignOut]:
        scope = f"campaigns:{account.id}"
        position = state.cursors.decode(scope, cursor)
        campaigns = await list_campaigns(state.db, account.id, position[0] if position else None, limit + 1)
        next_cursor = state.cursors.encode(scope, [campaigns[limit - 1].id]) if len(campaigns) > limit else None
        return Page([campaign_out(c) for c in campaigns[:limit]], next_cursor)
