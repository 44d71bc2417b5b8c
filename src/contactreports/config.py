"""Settings, read once from the environment."""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec
from limits import parse as parse_rate_limit

from contactreports.redis_config import parse_redis_url

DEFAULT_DATABASE_URL = "sqlite:///contactreports.db"
# Events one request may carry, by `POST /api/events` or a webhook delivery.
MAX_EVENTS_PER_BATCH = 10_000


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str = DEFAULT_DATABASE_URL
    # None means: start an embedded redis-server (only `contactreports up` does that). The forms
    # it takes (a password, TLS, Sentinel) are in redis_config.py.
    redis_url: str | None = None
    port: int = 8000
    queue_name: str = "contactreports:reports"
    max_body_bytes: int = 16 * 1024 * 1024
    # The edge (server.py): a request's line and headers must fit in this many bytes (else 431)
    # and arrive within this many seconds of the connection's start or its last response (else
    # it is closed); its body within body_timeout_seconds of the handler's first read (else 408).
    max_head_bytes: int = 16 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    # Connections one API process serves at once; more wait in the listen backlog.
    max_connections: int = 2048
    # The web page's forms (sign-in, new search): their bodies are small, and a form of a million
    # fields costs seconds of parsing on the event loop.
    max_form_bytes: int = 64 * 1024
    max_form_fields: int = 200
    # An event's details, as JSON: rows are paged by count, so this bounds a page's size.
    max_details_bytes: int = 16 * 1024
    # How long a write waits for another process's write lock before giving up (503 / retry).
    busy_timeout_ms: int = 10_000
    # PostgreSQL only: connections each process keeps (the API's, a worker's); a statement running
    # longer than the timeout is cancelled (0: the server's setting); prepared statements cached per
    # connection. Behind PgBouncer in transaction mode, both 0 (README, "Running at scale").
    database_pool_size: int = 10
    database_statement_timeout_ms: int = 30_000
    database_statement_cache_size: int = 100
    max_events_per_batch: int = MAX_EVENTS_PER_BATCH
    max_window_days: int = 3 * 366
    # Rows the worker copies per transaction: big enough that a chunk's fixed cost (five
    # statements, each a round trip to PostgreSQL or a hop to aiosqlite's thread) is small
    # beside its rows (bench/job_vs_sqlite.py), small enough that SQLite's write lock is held
    # for milliseconds, progress moves several times a second and a resumed run redoes little.
    chunk_rows: int = 10_000
    # A `processing` report whose heartbeat is older than this is taken to be lost.
    stale_after_seconds: float = 30.0
    # How often the reconciler (an arq cron job, one worker per tick) compares the database
    # with the queue (1 to 60).
    reconcile_every_seconds: int = 10
    max_attempts: int = 3
    # A search matching more events than this ends `failed` at once, saying to narrow it.
    max_report_rows: int = 2_000_000
    # Per account, shared by all API processes: "N/second|minute|hour|day".
    report_rate_limit: str = "60/minute"
    ingest_rate_limit: str = "1200/minute"
    # Webhook deliveries, counted apart: a platform posts one event a request (Mailgun, Postmark,
    # SNS) and drops what is still refused after a few retries, so this is a guard against a
    # leaked token run wild, far above any real sending volume.
    webhook_rate_limit: str = "60000/minute"
    # Deliveries that fail verification (a wrong signature or password: 401), per account and
    # provider: past it, deliveries are refused (429) before they are verified, so a secret
    # cannot be guessed by trying; a provider retries a 429, so its own deliveries are delayed.
    webhook_failure_limit: str = "30/minute"
    # Mailgun's signatures kept per account against replays (see webhooks/replays.py, `signed_once`):
    # a bound on what one account puts in the shared Redis (about 24 MB at 100,000). Past it, the
    # oldest is forgotten and signatures no newer are refused, so the 9 hours Mailgun's signatures
    # are otherwise accepted for shrink while an account gets more than this many in 9 hours.
    webhook_signatures_kept: int = 100_000
    # arq polls Redis for new jobs this often: it is the floor of submit-to-start latency.
    poll_delay_seconds: float = 0.05
    # Reports one worker process runs at once. arq starts at most this many a poll, so a
    # backlog drains at most max_jobs / poll_delay_seconds reports a second.
    max_jobs: int = 32
    # The web page's session cookie is sent only over HTTPS (and http://localhost); turn this
    # off only to serve the page over plain HTTP to another host.
    web_secure_cookie: bool = True
    # Amazon SES webhooks: the origin ("scheme://host[:port]", a regular expression matched in
    # full) that an SNS message's SigningCertURL and SubscribeURL must have. The default is
    # Amazon SNS's regional hosts over HTTPS, sns.<region>.amazonaws.com (.amazonaws.com.cn in
    # China), with a region shaped as AWS's (us-east-1, us-gov-west-1, cn-north-1), which no S3
    # host is (webhooks/sns.py says why); tests point it at a local server.
    sns_origin_pattern: str = r"https://sns\.[a-z]{2}(-gov)?-[a-z]+-\d+\.amazonaws\.com(\.cn)?"

    def __post_init__(self) -> None:
        # msgspec turns these ValueErrors into a ValidationError naming the bad value.
        for name in ("max_jobs", "chunk_rows", "webhook_signatures_kept"):
            if (value := getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if not 1 <= self.header_timeout_seconds <= 60:
            raise ValueError(f"header_timeout_seconds must be 1 to 60, got {self.header_timeout_seconds}")
        if self.max_head_bytes < 8192:
            raise ValueError(f"max_head_bytes must be at least 8192, got {self.max_head_bytes}")
        if self.max_connections < 1 or self.body_timeout_seconds <= 0:
            raise ValueError("max_connections must be at least 1 and body_timeout_seconds above 0")
        if not 1 <= self.reconcile_every_seconds <= 60:
            raise ValueError(f"reconcile_every_seconds must be 1 to 60, got {self.reconcile_every_seconds}")
        for limit in (
            self.report_rate_limit,
            self.ingest_rate_limit,
            self.webhook_rate_limit,
            self.webhook_failure_limit,
        ):
            try:
                parse_rate_limit(limit)
            except ValueError:
                raise ValueError(f"{limit!r} is not a rate limit like '60/minute'") from None
        if self.redis_url is not None:
            parse_redis_url(self.redis_url)
        try:
            re.compile(self.sns_origin_pattern)
        except re.error as error:
            raise ValueError(
                f"sns_origin_pattern {self.sns_origin_pattern!r} is not a regular expression: {error}"
            ) from None


class ConfigError(ValueError):
    """The environment holds a setting this service cannot use."""


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def load_settings() -> Settings:
    """Build Settings from CONTACTREPORTS_* (and the Procfile's DATABASE_URL, REDIS_URL, PORT)."""
    raw: dict[str, object] = {}
    for field in Settings.__struct_fields__:
        value = _env(f"CONTACTREPORTS_{field.upper()}")
        if value is not None:
            raw[field] = value
    for field, name in (("database_url", "DATABASE_URL"), ("redis_url", "REDIS_URL"), ("port", "PORT")):
        value = _env(name)
        if value is not None:
            raw[field] = value
    try:
        # strict=False lets "8000" from the environment become an int.
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"bad setting: {error}") from error
    check_database_url(settings.database_url)  # fail now, not at first use
    return settings


POSTGRESQL_SCHEMES = ("postgresql://", "postgres://")


def is_postgresql(database_url: str) -> bool:
    return database_url.startswith(POSTGRESQL_SCHEMES)


def check_database_url(database_url: str) -> None:
    if not is_postgresql(database_url):
        sqlite_path(database_url)


def sqlite_path(database_url: str) -> Path:
    """`sqlite:///relative.db` or `sqlite:////absolute.db` -> a filesystem path."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        raise ConfigError(
            f"unsupported DATABASE_URL {database_url!r}: expected sqlite:///path or postgresql://user@host/database"
        )
    return Path(database_url[len(prefix) :])
