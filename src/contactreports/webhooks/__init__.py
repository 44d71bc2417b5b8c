"""Webhook adapters: events from email platforms (SendGrid, Mailgun, Postmark, Amazon SES, Brevo)."""

from __future__ import annotations

from contactreports.config import Settings
from contactreports.webhooks.base import Adapter
from contactreports.webhooks.brevo import BrevoAdapter
from contactreports.webhooks.mailgun import MailgunAdapter
from contactreports.webhooks.postmark import PostmarkAdapter
from contactreports.webhooks.sendgrid import SendGridAdapter
from contactreports.webhooks.ses import SesAdapter


def make_adapters(settings: Settings) -> dict[str, Adapter]:
    """Every provider's adapter, by the `{provider}` of its webhook URL, in the order documents list them."""
    max_events = settings.max_events_per_batch
    adapters: list[Adapter] = [
        SendGridAdapter(max_events),
        MailgunAdapter(),
        PostmarkAdapter(),
        SesAdapter(settings.sns_origin_pattern, max_events),
        BrevoAdapter(max_events),
    ]
    return {adapter.name: adapter for adapter in adapters}
