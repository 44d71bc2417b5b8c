"""Webhook adapters: events from email platforms (SendGrid, Mailgun, Postmark, Amazon SES, Brevo)."""

from __future__ import annotations

from contactreports.config import Settings
from contactreports.webhooks.base import Adapter
from contactreports.webhooks.mailgun import MailgunAdapter
from contactreports.webhooks.postmark import PostmarkAdapter


def make_adapters(settings: Settings) -> dict[str, Adapter]:
    """Every provider's adapter, by the `{provider}` of its webhook URL, in the order documents list them."""
    adapters: list[Adapter] = [MailgunAdapter(), PostmarkAdapter()]
    return {adapter.name: adapter for adapter in adapters}
