"""Webhook adapters: events from email platforms (SendGrid, Mailgun, Postmark, Amazon SES, Brevo)."""
