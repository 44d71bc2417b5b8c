"""Webhook ingest rate: `POST /webhooks/{provider}/{token}` against `POST /api/events`, the same events.

Each provider posts as it does for real, over HTTP to a real API process (`contactreports serve`):
- SendGrid: JSON arrays of 100 and of 1,000 events (SendGrid batches up to about 1,000 events a
  request), each signed as its Signed Event Webhook signs (ECDSA P-256 over timestamp + body,
  with a key made here; signed as it is sent), from 2 clients;
- Postmark: one record a request, as Postmark posts, with basic auth, from 8 and from 32
  keep-alive clients;
- Mailgun: one event a request, signed with HMAC-SHA256 in the body, from 8 clients.

The events look like the providers' documented examples, with the fields we skip as well
(processed, delivered, open and click; or Delivery, Open and Click), over 200,000 contacts and
50 campaigns (categories or tags). Each has its own provider id, so every one is stored.

The baseline, in the same run, is the same events through `POST /api/events` with the API key:
the events the provider's adapter makes of each delivery (worked out before the clock starts), in
requests of as many events, from as many clients, to the same API process. The ratio is what the
webhook path adds to plain ingest: the token and secret lookups, the signature or password, the
provider's format, the campaigns upserted on first sight. Each case runs on a fresh store, in
rounds that alternate the webhook and the baseline so that the machine's other load hits both
alike. The server's CPU an event is printed too: waiting for a core does not change it.

The rate limits are lifted (services.service_env: CONTACTREPORTS_INGEST_RATE_LIMIT and
CONTACTREPORTS_WEBHOOK_RATE_LIMIT are 1000000/minute, far above any case here), but still counted
in Redis on every request, as in production. At the end each account must hold exactly the events
sent to it, or the run fails.

Every case runs on SQLite, then on PostgreSQL (`--backend`; a private server, bench/common.py);
the server CPU counted is the API's processes', not PostgreSQL's.

    .venv/bin/python bench/webhooks.py [--size tiny|small|full] [--backend both] [--workers 1] [--only PROVIDER]
                                       [--profile DIR]

`--profile DIR` records the API process with py-spy (every busy thread, SQLite's among them)
while each path of each case is timed, as collapsed stacks in DIR; it slows the server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import msgspec
import psutil
import uvloop
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from common import PostgresServer, backends, new_store_url, postgres, size_parser, work_folder
from contactreports.models import Campaign
from contactreports.store.accounts import create_account
from contactreports.store.campaigns import put_campaign
from contactreports.store.database import Database
from contactreports.store.webhooks import rotate_webhook_token, set_webhook_secret
from contactreports.webhooks.base import Adapter, Delivery
from contactreports.webhooks.mailgun import MailgunAdapter
from contactreports.webhooks.postmark import PostmarkAdapter
from contactreports.webhooks.sendgrid import SendGridAdapter
from services import LIFTED_RATE_LIMIT, profiled, running

CONTACTS, CAMPAIGNS = 200_000, 50
FIRST, SPAN = 1_767_225_600, 300 * 86_400  # event times: 300 days from 2026-01-01, in seconds
ROUNDS = {"tiny": 2, "small": 4, "full": 4}
# Events each path of a case sends, by size: (batched cases, one-event-a-request cases).
EVENTS = {"tiny": (4_000, 200), "small": (40_000, 3_000), "full": (200_000, 10_000)}
POSTMARK_SECRET = "bench:a-long-random-password-for-postmark-webhooks"
MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
)
GEO = {"CountryISOCode": "RS", "Country": "Serbia", "City": "Novi Sad", "Zip": "21000", "IP": "188.2.95.4"}


def fixed(headers: dict[str, str]) -> Callable[[bytes], dict[str, str]]:
    """The same headers for every body."""
    return lambda _: headers


@dataclass
class Way:
    """One way in for a case's events: its request bodies and what it measured."""

    url: str = ""
    headers: Callable[[bytes], dict[str, str]] = fixed({})
    bodies: list[bytes] = field(default_factory=list)
    events: int = 0  # timed
    seconds: float = 0.0
    server_cpu: float = 0.0
    load_cpu: float = 0.0
    ingested: int = 0  # every request's, warmup included
    duplicates: int = 0


@dataclass
class Case:
    label: str
    slug: str
    adapter: Adapter
    secret: str
    per_request: int
    clients: int
    webhook: Way
    api: Way
    campaigns: dict[str, str]


def contact(rng: random.Random) -> str:
    return f"c{rng.randrange(CONTACTS)}@example.com"


def sendgrid_event(rng: random.Random, n: int) -> dict:
    """An event as SendGrid posts it (its documented examples' fields)."""
    kind = rng.choice(("processed", "delivered", "open", "click"))
    event = {
        "email": contact(rng),
        "timestamp": FIRST + rng.randrange(SPAN),
        "smtp-id": f"<bench{n // 4}@ismtpd-555>",
        "event": kind,
        "category": f"newsletter-{rng.randrange(CAMPAIGNS)}",
        "sg_event_id": base64.b64encode(n.to_bytes(16)).decode(),
        "sg_message_id": f"bench{n // 4}.filter0001.16648.5515E0B88.0",
    }
    if kind == "delivered":
        event |= {"response": "250 OK", "ip": "168.1.1.1", "tls": 1}
    elif kind == "open":
        event |= {"useragent": USER_AGENT, "ip": "203.0.113.7", "sg_machine_open": False}
    elif kind == "click":
        event |= {"useragent": USER_AGENT, "ip": "203.0.113.7", "url": "https://example.com/spring?utm=news"}
        event["url_offset"] = {"index": 0, "type": "html"}
    return event


def postmark_record(rng: random.Random, n: int) -> dict:
    """A Delivery, Open or Click record as Postmark posts it (its documented examples' fields)."""
    kind = rng.choice(("Delivery", "Open", "Click"))
    at = datetime.fromtimestamp(FIRST + rng.randrange(SPAN), UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{n % 10**7:07d}Z"
    record = {
        "RecordType": kind,
        "MessageStream": "outbound",
        "MessageID": f"00000000-0000-4000-8000-{n:012x}",
        "Recipient": contact(rng),
        "Tag": f"newsletter-{rng.randrange(CAMPAIGNS)}",
        "Metadata": {"customer": "bench", "plan": "pro"},
    }
    if kind == "Delivery":
        return record | {"DeliveredAt": at, "Details": "smtp;250 2.0.0 OK", "ServerID": 23}
    record |= {"ReceivedAt": at, "Platform": "Mobile", "UserAgent": USER_AGENT, "Geo": GEO}
    record["Client"] = {"Name": "Safari Mobile", "Company": "Apple", "Family": "Safari"}
    record["OS"] = {"Name": "iOS 17.4", "Company": "Apple Computer, Inc.", "Family": "iOS"}
    if kind == "Open":
        return record | {"FirstOpen": n % 3 == 0, "ReadSeconds": 5}
    return record | {"ClickLocation": "HTML", "OriginalLink": "https://example.com/spring?utm=news"}


def mailgun_event(rng: random.Random, n: int, signed_at: int) -> dict:
    """An event as Mailgun posts it (its documented examples' fields), signed with MAILGUN_KEY."""
    kind = rng.choice(("accepted", "delivered", "opened", "clicked"))
    token = f"{n:050x}"
    data = {
        "event": kind,
        "id": f"bench{n:017d}",
        "timestamp": FIRST + rng.randrange(SPAN) + 0.5549328,
        "log-level": "info",
        "recipient": contact(rng),
        "recipient-domain": "example.com",
        "tags": [f"newsletter-{rng.randrange(CAMPAIGNS)}"],
        "campaigns": [],
        "user-variables": {},
        "message": {"headers": {"message-id": f"bench{n // 4}@mg.example.com", "subject": "Spring news"}},
    }
    if kind == "delivered":
        data["delivery-status"] = {"code": 250, "message": "OK", "attempt-no": 1, "tls": True}
    if kind in ("opened", "clicked"):
        data |= {"ip": "203.0.113.7", "geolocation": {"city": "San Antonio", "country": "US", "region": "TX"}}
        data["client-info"] = {
            "client-name": "Mobile Safari",
            "client-type": "mobile browser",
            "user-agent": USER_AGENT,
        }
    if kind == "clicked":
        data["url"] = "https://example.com/spring?utm=news"
    signature = hmac.new(MAILGUN_KEY.encode(), f"{signed_at}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"token": token, "timestamp": str(signed_at), "signature": signature}, "event-data": data}


def sendgrid_signer() -> tuple[str, Callable[[bytes], dict[str, str]]]:
    """A new key as SendGrid's verification key (base64 DER), and headers signing a body with it now."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))

    def headers(body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }

    return public.decode(), headers


def make_case(provider: str, per_request: int, clients: int, events: int, first_id: int) -> Case:
    """A case's webhook bodies, and the same events as POST /api/events bodies (what the adapter makes of them)."""
    rng = random.Random(first_id)
    ids = range(first_id, first_id + events)
    if provider == "sendgrid":
        adapter, label = SendGridAdapter(), f"SendGrid, signed, {per_request:,} events a request"
        secret, headers = sendgrid_signer()
        records = [sendgrid_event(rng, n) for n in ids]
        bodies = [msgspec.json.encode(records[i : i + per_request]) for i in range(0, events, per_request)]
    elif provider == "postmark":
        adapter, label = PostmarkAdapter(), "Postmark, basic auth, 1 event a request"
        secret = POSTMARK_SECRET
        headers = fixed({"Authorization": f"Basic {base64.b64encode(secret.encode()).decode()}"})
        bodies = [msgspec.json.encode(postmark_record(rng, n)) for n in ids]
    else:
        adapter, label = MailgunAdapter(), "Mailgun, HMAC, 1 event a request"
        secret, headers, signed_at = MAILGUN_KEY, fixed({}), int(time.time())
        bodies = [msgspec.json.encode(mailgun_event(rng, n, signed_at)) for n in ids]
    campaigns, api_bodies = {}, []
    for body in bodies:
        parsed = adapter.parse(Delivery(headers={}, body=body, received_at=0.0))
        assert len(parsed.events) == per_request and not parsed.ignored, parsed.ignored
        campaigns |= parsed.campaigns
        api_bodies.append(msgspec.json.encode(parsed.events))
    return Case(
        f"{label}, {clients} clients",
        f"{provider}-{per_request}-{clients}",
        adapter,
        secret,
        per_request,
        clients,
        Way(headers=headers, bodies=bodies),
        Way(bodies=api_bodies),
        campaigns,
    )


async def prepare(database_url: str, case: Case) -> tuple[int, int]:
    """A fresh store: an account with the provider's secret set, and a baseline account with the
    campaigns the webhooks will create. Sets each path's URL and headers; returns the two account ids."""
    db = await Database.open(database_url)
    try:
        hooks, _ = await create_account(db, "webhooks")
        token, _ = await rotate_webhook_token(db, hooks.id)
        await set_webhook_secret(db, hooks.id, case.adapter.name, case.secret)
        plain, api_key = await create_account(db, "baseline")
        for campaign_id, name in case.campaigns.items():
            await put_campaign(db, plain.id, Campaign(campaign_id, name, "email", None, False))
    finally:
        await db.close()
    case.webhook.url = f"/webhooks/{case.adapter.name}/{token}"
    case.api.url, case.api.headers = "/api/events", fixed({"Authorization": f"Bearer {api_key}"})
    return hooks.id, plain.id


async def send(session: aiohttp.ClientSession, way: Way, bodies: list[bytes], clients: int) -> None:
    """POST `bodies` to `way` from `clients` concurrent keep-alive clients; any answer but 200 fails the run."""
    pending = deque(bodies)

    async def client() -> None:
        while pending:
            body = pending.popleft()
            async with session.post(way.url, data=body, headers=way.headers(body)) as response:
                answer = await response.read()
            if response.status != 200:
                raise SystemExit(f"POST {way.url.split('/')[1]}...: {response.status} {answer[:500]!r}")
            result = msgspec.json.decode(answer)
            way.ingested += result["ingested"]
            way.duplicates += result["duplicates"]

    await asyncio.gather(*(client() for _ in range(clients)))


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(process.cpu_times()[:2]) for process in processes)


async def timed(
    session: aiohttp.ClientSession, case: Case, way: Way, bodies: list[bytes], server: list[psutil.Process]
) -> None:
    ourselves = [psutil.Process()]
    server_before, load_before, started = cpu_seconds(server), cpu_seconds(ourselves), time.perf_counter()
    await send(session, way, bodies, case.clients)
    way.seconds += time.perf_counter() - started
    way.server_cpu += cpu_seconds(server) - server_before
    way.load_cpu += cpu_seconds(ourselves) - load_before
    way.events += len(bodies) * case.per_request


def rounds(bodies: list[bytes], count: int) -> list[list[bytes]]:
    """`bodies` in `count` slices of nearly the same length."""
    assert len(bodies) >= count, f"{len(bodies)} requests cannot make {count} rounds"
    return [bodies[len(bodies) * n // count : len(bodies) * (n + 1) // count] for n in range(count)]


async def run_case(work: Path, database_url: str, case: Case, rounds_: int, profile: Path | None) -> None:
    """Warm both paths up, then time them in alternating rounds; check every event is stored once."""
    accounts = await prepare(database_url, case)
    async with running(work / case.slug, database_url) as url:
        serve = next(p for p in psutil.Process().children() if "serve" in p.cmdline())
        server = [serve, *serve.children(recursive=True)]
        connector = aiohttp.TCPConnector(limit=case.clients)
        timeout = aiohttp.ClientTimeout(total=600)
        json = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession(url, connector=connector, timeout=timeout, headers=json) as session:
            # Untimed: each client's connection opened, and the first requests' imports and caches.
            ways = {"webhook": case.webhook, "api": case.api}
            for way in ways.values():
                await send(session, way, way.bodies[: case.clients], case.clients)
            slices = {name: rounds(way.bodies[case.clients :], rounds_) for name, way in ways.items()}
            for n in range(rounds_):
                for name in ("webhook", "api") if n % 2 == 0 else ("api", "webhook"):
                    with profiled([p.pid for p in server], profile, f"{case.slug}-{name}-{n}", gil_only=False):
                        await timed(session, case, ways[name], slices[name][n], server)
    await check_stored(database_url, case, accounts)


async def check_stored(database_url: str, case: Case, accounts: tuple[int, int]) -> None:
    """Each account holds exactly the events sent to it, each once, and the campaigns they name;
    else the run fails."""
    sent = len(case.webhook.bodies) * case.per_request
    db = await Database.open(database_url)

    async def count(table: str, account_id: int) -> int:
        return await db.fetch_value(f"SELECT count(*) FROM {table} WHERE account_id = :a", {"a": account_id})

    try:
        for account_id, way in zip(accounts, (case.webhook, case.api), strict=True):
            stored = await count("events", account_id) + await count("archived_events", account_id)
            campaigns = await count("campaigns", account_id)
            if not stored == way.ingested == sent or way.duplicates or campaigns != len(case.campaigns):
                raise SystemExit(
                    f"{case.label}, {way.url.split('/')[1]}: {sent:,} events sent, {way.ingested:,} ingested, "
                    f"{way.duplicates:,} duplicates, {stored:,} stored; {campaigns} of {len(case.campaigns)} campaigns"
                )
    finally:
        await db.close()


def per_event_us(seconds: float, way: Way) -> str:
    return f"{seconds / way.events * 1e6:,.0f}"


def report(case: Case) -> None:
    hook, api = case.webhook, case.api
    hook_rate, api_rate = hook.events / hook.seconds, api.events / api.seconds
    hook_cpu, api_cpu = hook.server_cpu / hook.events, api.server_cpu / api.events
    print(
        f"  {case.label:<52} {hook.events:>7,} events: webhook {hook_rate:7,.0f} events/s, POST /api/events "
        f"{api_rate:7,.0f} events/s: {hook_rate / api_rate:.2f}x; server CPU an event "
        f"{per_event_us(hook.server_cpu, hook)} / {per_event_us(api.server_cpu, api)} us "
        f"({hook_cpu / api_cpu:.2f}x), load tool {per_event_us(hook.load_cpu, hook)} / "
        f"{per_event_us(api.load_cpu, api)} us",
        flush=True,
    )


CASES = (("sendgrid", 100, 2), ("sendgrid", 1_000, 2), ("postmark", 1, 8), ("postmark", 1, 32), ("mailgun", 1, 8))


async def main(size: str, workers: int, profile: Path | None, only: list[str] | None, choice: str) -> None:
    chosen = backends(choice)
    with postgres("postgresql" in chosen) as server:
        for backend in chosen:
            await measure(backend, server, size, workers, profile, only)


async def measure(
    backend: str, server: PostgresServer | None, size: str, workers: int, profile: Path | None, only: list[str] | None
) -> None:
    batched, single = EVENTS[size]
    os.environ["WEB_CONCURRENCY"] = str(workers)  # `serve`'s processes
    print(
        f"{backend}: webhook ingest over HTTP vs POST /api/events, the same events: {workers} API process(es), "
        f"rate limits lifted to {LIFTED_RATE_LIMIT}, "
        f"a fresh store a case, {ROUNDS[size]} rounds alternating:",
        flush=True,
    )
    sent, first_id, cases = 0, 0, 0
    with work_folder("webhooks") as work:
        for provider, per_request, clients in CASES:
            if only and provider not in only:
                continue
            events = batched if per_request > 1 else single
            case = make_case(provider, per_request, clients, events, first_id)
            first_id += events
            database_url = await new_store_url(backend, work, case.slug, server)
            await run_case(work, database_url, case, ROUNDS[size], profile)
            report(case)
            sent, cases = sent + 2 * events, cases + 1
    print(f"stored: all {sent:,} events sent (warmup included), each once, in {cases} cases")


if __name__ == "__main__":
    parser = size_parser(__doc__)
    parser.add_argument("--workers", type=int, default=1, help="API processes (contactreports serve --workers)")
    parser.add_argument("--profile", type=Path, help="record the API process with py-spy into this folder")
    parser.add_argument("--only", action="append", choices=("sendgrid", "postmark", "mailgun"), help="(repeatable)")
    arguments = parser.parse_args()
    uvloop.run(main(arguments.size, arguments.workers, arguments.profile, arguments.only, arguments.backend))
