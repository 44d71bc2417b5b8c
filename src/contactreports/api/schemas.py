"""Request and response bodies of the HTTP API (as docs/openapi.json and the README describe them);
a report's, which the web page shares, are `reports.spec.ReportIn` and `reports.view.ReportOut`."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contactreports.models import MAX_CAMPAIGN_NAME, MAX_KEY_NAME, Channel, Timestamp, TimestampOut

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CAMPAIGN_NAME, examples=["Spring sale"])]


class ActionOut(msgspec.Struct):
    name: str
    label: str


class CategoryOut(msgspec.Struct):
    name: str
    label: str
    actions: list[ActionOut]


class Catalogue(msgspec.Struct):
    categories: list[CategoryOut]


class CampaignIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    channel: Channel
    sent_at: Annotated[Timestamp, msgspec.Meta(examples=["2026-03-01T09:00:00Z"])] | None = None
    archived: bool = False


class CampaignOut(msgspec.Struct):
    id: str
    name: str
    channel: Channel
    sent_at: TimestampOut | None
    archived: bool


class CampaignPage(msgspec.Struct):
    """A page of campaigns, by id. `next_cursor` asks for the next page; null on the last."""

    items: list[CampaignOut]
    next_cursor: str | None


class IngestResult(msgspec.Struct):
    ingested: int
    duplicates: int


class Health(msgspec.Struct):
    status: str
    database: str
    redis: str


Provider = Annotated[str, msgspec.Meta(examples=["postmark"])]


class WebhookSecretIn(msgspec.Struct, forbid_unknown_fields=True):
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=4096, examples=["hooks:a-long-random-password"])]


class WebhookTokenOut(msgspec.Struct):
    token: Annotated[str, msgspec.Meta(description="Shown this once: only its hash is kept.")]
    urls: Annotated[
        dict[Provider, str],
        msgspec.Meta(description="The URL to paste into each provider's dashboard, by provider."),
    ]


class WebhookProviderOut(msgspec.Struct):
    name: Provider
    configured: Annotated[bool, msgspec.Meta(description="Whether the account has a secret for this provider.")]
    updated_at: Annotated[TimestampOut | None, msgspec.Meta(description="When the secret was last set.")]
    secret_help: Annotated[str, msgspec.Meta(description="What the secret is and where to find it.")]


class WebhooksOut(msgspec.Struct):
    has_token: bool
    token_created_at: TimestampOut | None
    providers: list[WebhookProviderOut]


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KEY_NAME, examples=["reporting dashboard"])]
    read_only: Annotated[bool, msgspec.Meta(description="Whether the key may only read (GET).")] = False


class ApiKeyOut(msgspec.Struct):
    id: str
    name: str
    read_only: bool
    prefix: Annotated[
        str | None,
        msgspec.Meta(
            description="The secret's first characters, to tell keys apart; null for a key made before accounts "
            "had several keys (rotate it to get one).",
            examples=["cr_Xk2vQ9a"],
        ),
    ]
    created_at: TimestampOut


class ApiKeyPage(msgspec.Struct):
    """A page of API keys, oldest first. `next_cursor` asks for the next page; null on the last."""

    items: list[ApiKeyOut]
    next_cursor: str | None


class ApiKeyMade(ApiKeyOut):
    api_key: Annotated[str, msgspec.Meta(description="The secret: shown this once, only its hash is kept.")]
