"""Webhooks: the account's token and secrets, and Postmark's documented payloads posted to the live API."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from conftest import ApiAccount, service_env, start_api, wait_until
from contactreports.cli.embedded_redis import free_port
from contactreports.models import OUT_OF_RANGE
from contactreports.store.database import Database
from contactreports.webhooks.base import OFF_LOOP_BYTES, Delivery, off_loop
from contactreports.webhooks.checks import MAX_IGNORED_NAME, ignored_names
from contactreports.webhooks.postmark import PostmarkAdapter
from helpers import ingest, put_campaign, report_for, result, stored, webhook_url

FIXTURES = Path(__file__).with_name("fixtures") / "webhooks" / "postmark"
SECRET = "hooks:s3cret-passw0rd-2026"
JOHN = "john@example.com"
UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/35.0.1916.153 Safari/537.36"
)
POSTMARK = {
    "name": "postmark",
    "configured": False,
    "updated_at": None,
    "secret_help": PostmarkAdapter.secret_help,
}
INVALID = "The request is invalid: see `errors`."
NOT_USER_PASS = "expected username:password (the webhook's basic-auth credentials), both non-empty"
CONTROLS = "control characters (tab, newline...) cannot be sent in basic-auth credentials"
# Brevo's rule for its token (webhooks.base.weak_secret): Postmark signs nothing either.
GUESSABLE = "a Postmark password must be at least 16 characters long, so it cannot be guessed"
UNPRINTABLE = "a Postmark password must be printable ASCII without spaces: it travels in an HTTP header"
NOT_A_RECORD = "not a Postmark webhook record: "
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def with_credentials(url: str, credentials: str = SECRET) -> str:
    """The URL as the user pastes it into Postmark: https://user:password@host/... (httpx sends basic auth)."""
    return url.replace("://", f"://{credentials}@", 1)


def problem(status: int, title: str, detail: str, **extra: object) -> dict:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}


def postmark_entry(providers: list[dict]) -> dict:
    return next(provider for provider in providers if provider["name"] == "postmark")


async def test_token_and_secrets_are_managed_through_the_api(api: str, client: httpx.AsyncClient) -> None:
    before = (await client.get("/api/webhooks")).json()
    names = [provider["name"] for provider in before["providers"]]

    created = await client.post("/api/webhooks/token")
    after_token = (await client.get("/api/webhooks")).json()
    put = await client.put("/api/webhooks/postmark", json={"secret": SECRET})
    configured = (await client.get("/api/webhooks")).json()
    deleted = await client.delete("/api/webhooks/postmark")
    deleted_again = await client.delete("/api/webhooks/postmark")

    assert (before["has_token"], before["token_created_at"]) == (False, None)
    assert "postmark" in names
    assert all(provider["configured"] is False for provider in before["providers"])
    assert postmark_entry(before["providers"]) == POSTMARK
    assert created.status_code == 201
    token = created.json()["token"]
    assert re.fullmatch(r"wh_[A-Za-z0-9_-]{43}", token)
    assert created.json() == {"token": token, "urls": {name: f"{api}/webhooks/{name}/{token}" for name in names}}
    assert after_token["has_token"] is True and TIMESTAMP.match(after_token["token_created_at"])
    assert put.status_code == 200
    updated_at = put.json()["updated_at"]
    assert TIMESTAMP.match(updated_at) and updated_at >= after_token["token_created_at"]
    assert put.json() == {**POSTMARK, "configured": True, "updated_at": updated_at}
    assert postmark_entry(configured["providers"]) == put.json()
    assert (deleted.status_code, deleted.content, deleted_again.status_code) == (204, b"", 204)
    assert postmark_entry((await client.get("/api/webhooks")).json()["providers"]) == POSTMARK


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"secret": "no-colon"}, [("secret", NOT_USER_PASS)]),
        ({"secret": ":password"}, [("secret", NOT_USER_PASS)]),
        ({"secret": "user:"}, [("secret", NOT_USER_PASS)]),
        ({"secret": "user:pass\n"}, [("secret", CONTROLS)]),
        ({"secret": "a:b"}, [("secret", GUESSABLE)]),
        ({"secret": "hooks:" + "p" * 15}, [("secret", GUESSABLE)]),
        ({"secret": "hooks:correct horse battery staple"}, [("secret", UNPRINTABLE)]),
        ({"secret": "hooks:zwölf-zeichen-und-mehr"}, [("secret", UNPRINTABLE)]),
        ({"secret": ""}, [("secret", "Expected `str` of length >= 1")]),
        ({"secret": "u:" + "p" * 4095}, [("secret", "Expected `str` of length <= 4096")]),
        ({"secret": SECRET, "other": 1}, [("other", "Object contains unknown field `other`")]),
        ({}, [("secret", "Object missing required field `secret`")]),
    ],
)  # fmt: skip
async def test_a_secret_the_provider_cannot_have_is_a_400(
    client: httpx.AsyncClient, body: dict, errors: list[tuple[str, str]]
) -> None:
    response = await client.put("/api/webhooks/postmark", json=body)

    expected = [{"field": field, "message": message} for field, message in errors]
    assert (response.status_code, response.json()) == (400, problem(400, "Bad Request", INVALID, errors=expected))
    assert postmark_entry((await client.get("/api/webhooks")).json()["providers"]) == POSTMARK


async def test_a_password_of_16_characters_is_strong_enough(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/webhooks/postmark", json={"secret": "h:" + "p" * 16})

    assert (response.status_code, response.json()["configured"]) == (200, True)


async def test_unknown_providers_and_missing_keys(api: str, client: httpx.AsyncClient) -> None:
    names = ", ".join(provider["name"] for provider in (await client.get("/api/webhooks")).json()["providers"])
    not_found = problem(404, "Not Found", f"No such webhook provider 'nope': one of {names}.")

    assert (await client.put("/api/webhooks/nope", json={"secret": SECRET})).json() == not_found
    assert (await client.delete("/api/webhooks/nope")).json() == not_found
    async with httpx.AsyncClient(base_url=api) as anonymous:
        for method, path in [
            ("GET", "/api/webhooks"),
            ("POST", "/api/webhooks/token"),
            ("DELETE", "/api/webhooks/postmark"),
        ]:
            assert (await anonymous.request(method, path)).status_code == 401


@pytest.fixture
async def postmark_url(client: httpx.AsyncClient) -> str:
    return await webhook_url(client, "postmark", SECRET)


async def test_postmarks_documented_payloads_make_a_contact_report(
    client: httpx.AsyncClient, postmark_url: str, api: str
) -> None:
    # A campaign the account already has keeps its name and settings.
    await put_campaign(client, "postmark:tag:Test", "Our test sends")
    names = ["delivery", "bounce", "spam_complaint", "open", "click", "subscription_change"]
    later_open = json.loads(fixture("open"))
    later_open.update(FirstOpen=False, ReceivedAt="2019-11-06T08:00:00.1234567Z")
    reactivated = json.loads(fixture("subscription_change"))
    reactivated.update(
        SuppressSending=False, ChangedAt="2020-02-03T09:00:00Z", Origin="Customer", Tag=None, Metadata={}
    )
    bodies = [fixture(name) for name in names] + [json.dumps(later_open).encode(), json.dumps(reactivated).encode()]

    async with httpx.AsyncClient() as postmark:
        url = with_credentials(postmark_url)
        first = [
            await postmark.post(url, content=body, headers={"Content-Type": "application/json"}) for body in bodies
        ]
        again = [
            await postmark.post(url, content=body, headers={"Content-Type": "application/json"}) for body in bodies
        ]

    assert [(r.status_code, r.json()) for r in first] == [
        (200, {"ingested": 1, "duplicates": 0, "ignored": {}, "rejected": []})
    ] * 8
    assert [(r.status_code, r.json()) for r in again] == [
        (200, {"ingested": 0, "duplicates": 1, "ignored": {}, "rejected": []})
    ] * 8
    welcome = {"id": "postmark:tag:welcome-email", "name": "welcome-email", "archived": False}
    test = {"id": "postmark:tag:Test", "name": "Our test sends", "archived": False}
    assert await report_for(client, JOHN, "2017-06-01T00:00:00Z", "2020-06-01T00:00:00Z") == [
        {
            "occurred_at": "2017-10-25T15:21:11.906Z",
            "action": "email.clicked",
            "category": "email",
            "campaign": welcome,
            "details": {
                "provider": "postmark",
                "message_id": "00000000-0000-0000-0000-000000000000",
                "url": "https://example.com",
                "user_agent": UA,
                "ip": "8.8.8.8",
            },
        },
        {
            "occurred_at": "2019-11-05T16:33:54.907Z",
            "action": "email.delivered",
            "category": "email",
            "campaign": welcome,
            "details": {"provider": "postmark", "message_id": "883953f4-6105-42a2-a16a-77a8eac79483"},
        },
        {
            "occurred_at": "2019-11-05T16:33:54.907Z",
            "action": "email.bounced",
            "category": "email",
            "campaign": test,
            "details": {
                "provider": "postmark",
                "message_id": "883953f4-6105-42a2-a16a-77a8eac79483",
                "provider_event": "HardBounce",
                "bounce_type": "hard",
                "reason": "Test bounce details",
            },
        },
        {
            "occurred_at": "2019-11-05T16:33:54.907Z",
            "action": "email.spam_reported",
            "category": "email",
            "campaign": test,
            "details": {
                "provider": "postmark",
                "message_id": "00000000-0000-0000-0000-000000000000",
                "reason": "Test spam complaint details",
            },
        },
        *(
            {
                "occurred_at": at,
                "action": "email.opened",
                "category": "email",
                "campaign": welcome,
                "details": {
                    "provider": "postmark",
                    "message_id": "883953f4-6105-42a2-a16a-77a8eac79483",
                    "user_agent": UA,
                    "ip": "188.2.95.4",
                    "first_open": first,
                },
            }
            for at, first in [("2019-11-05T16:33:54.907Z", True), ("2019-11-06T08:00:00.123Z", False)]
        ),
    ]
    assert await report_for(client, "bounced-address@wildbit.com", "2019-06-01T00:00:00Z", "2020-06-01T00:00:00Z") == [
        {
            "occurred_at": "2020-02-01T10:53:34.416Z",
            "action": "email.unsubscribed",
            "category": "email",
            "campaign": {"id": "postmark:tag:my-tag", "name": "my-tag", "archived": False},
            "details": {
                "provider": "postmark",
                "message_id": "883953f4-6105-42a2-a16a-77a8eac79483",
                "reason": "HardBounce",
                "origin": "Recipient",
            },
        },
        {
            "occurred_at": "2020-02-03T09:00:00.000Z",
            "action": "campaign.subscribed",
            "category": "campaign",
            "campaign": {"id": "postmark:stream:outbound", "name": "outbound", "archived": False},
            "details": {
                "provider": "postmark",
                "message_id": "883953f4-6105-42a2-a16a-77a8eac79483",
                "origin": "Customer",
            },
        },
    ]
    campaigns = (await client.get("/api/campaigns")).json()["items"]
    assert campaigns == [
        {"id": f"postmark:{kind}", "name": name, "channel": "email", "sent_at": None, "archived": False}
        for kind, name in [
            ("stream:outbound", "outbound"),
            ("tag:Test", "Our test sends"),
            ("tag:my-tag", "my-tag"),
            ("tag:welcome-email", "welcome-email"),
        ]
    ]


@pytest.mark.parametrize(
    ("record", "ignored"),
    [
        ({"RecordType": "SMTPApiError", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483"}, "SMTPApiError"),
        # An out-of-office reply, which Postmark files as a bounce: no bounce in a report.
        (json.loads(fixture("bounce")) | {"Type": "AutoResponder", "TypeCode": 64}, "Bounce:AutoResponder"),
    ],
)
async def test_record_types_that_mean_nothing_to_a_report_are_counted_and_logged(
    client: httpx.AsyncClient,
    postmark_url: str,
    account: ApiAccount,
    db: Database,
    logs: Path,
    record: dict,
    ignored: str,
) -> None:
    async with httpx.AsyncClient() as postmark:
        response = await postmark.post(with_credentials(postmark_url), json=record)

    assert (response.status_code, response.json()) == (
        200,
        {"ingested": 0, "duplicates": 0, "ignored": {ignored: 1}, "rejected": []},
    )
    assert await stored(db, account.id) == (0, 0)
    line = f"postmark webhook for account {account.id}: ignored {ignored} x1"
    await wait_until(lambda: _contains(logs / "api.log", line))


async def _contains(path: Path, text: str) -> bool:
    return text in path.read_text()


async def test_an_ignored_type_name_is_answered_and_logged_escaped_and_cut_short(
    client: httpx.AsyncClient, postmark_url: str, account: ApiAccount, logs: Path
) -> None:
    # Postmark's RecordType is whatever the body says: here a line break, a bell and 100 KB.
    record = {"RecordType": "Forged\nINFO fake log line\x07" + "x" * 100_000, "MessageID": "m"}
    async with httpx.AsyncClient() as postmark:
        response = await postmark.post(with_credentials(postmark_url), json=record)

    shown = "Forged\\nINFO fake log line\\x07" + "x" * 69 + "…"
    assert len(shown) == MAX_IGNORED_NAME
    assert (response.status_code, response.json()) == (200, result(ignored={shown: 1}))
    await wait_until(
        lambda: _contains(logs / "api.log", f"postmark webhook for account {account.id}: ignored {shown} x1")
    )
    assert "\nINFO fake log line" not in (logs / "api.log").read_text()


def test_ignored_type_names_alike_once_cut_short_are_counted_together() -> None:
    long_a, long_b = "t" * 150 + "a", "t" * 150 + "b"
    ignored = {long_a: 2, long_b: 3, "deferred": 1, "tab\there": 1, "line\u2028break": 1}

    assert ignored_names(ignored) == {
        "t" * 99 + "…": 5,
        "deferred": 1,
        "tab\\there": 1,
        "line\\u2028break": 1,
    }


async def test_a_rotated_token_stops_working_at_once(client: httpx.AsyncClient, postmark_url: str) -> None:
    new_url = (await client.post("/api/webhooks/token")).json()["urls"]["postmark"]

    async with httpx.AsyncClient() as postmark:
        old = await postmark.post(with_credentials(postmark_url), content=fixture("delivery"))
        new = await postmark.post(with_credentials(new_url), content=fixture("delivery"))

    assert (old.status_code, old.json()) == (
        404, problem(404, "Not Found", "Unknown webhook token: make one with POST /api/webhooks/token.")
    )  # fmt: skip
    assert (new.status_code, new.json()) == (200, {"ingested": 1, "duplicates": 0, "ignored": {}, "rejected": []})


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def with_time(record: bytes, delivered_at: str) -> bytes:
    return json.dumps(json.loads(record) | {"DeliveredAt": delivered_at}).encode()


NO_CREDENTIALS = (
    "No basic-auth credentials: give Postmark the webhook URL with them "
    "(https://username:password@host/...) or set its Basic auth fields."
)
WRONG = "Wrong basic-auth credentials for Postmark."
NOT_BASE64 = "The basic-auth credentials are not base64 of user:password."


@pytest.mark.parametrize(
    ("headers", "body", "status", "detail", "errors"),
    [
        ({}, fixture("delivery"), 401, NO_CREDENTIALS, None),
        ({"Authorization": "Bearer " + SECRET}, fixture("delivery"), 401, NO_CREDENTIALS, None),
        (_basic("hooks:s3cret-passw0rD-2026"), fixture("delivery"), 401, WRONG, None),
        (_basic(SECRET + " "), fixture("delivery"), 401, WRONG, None),
        (_basic("H" + SECRET[1:]), fixture("delivery"), 401, WRONG, None),
        ({"Authorization": "Basic !!!"}, fixture("delivery"), 401, NOT_BASE64, None),
        ({"Authorization": b"Basic \xfc"}, fixture("delivery"), 401, NOT_BASE64, None),
        (_basic("hooks"), fixture("delivery"), 401, NOT_BASE64, None),
        ({"Authorization": "Basic " + base64.b64encode(b"hooks:\xff").decode()}, fixture("delivery"), 401,
         NOT_BASE64, None),
        (_basic(SECRET), b"", 400, INVALID, [("body", "not valid JSON: Input data was truncated")]),
        (_basic(SECRET), b'{"RecordType": "\xff"}', 400, INVALID, [("body", "not valid UTF-8")]),
        (_basic(SECRET), b"RecordType=Delivery", 400, INVALID,
         [("body", "not valid JSON: JSON is malformed: invalid character (byte 0)")]),
        (_basic(SECRET), b"[]", 400, INVALID, [("body", NOT_A_RECORD + "Expected `object`, got `array`")]),
        (_basic(SECRET), b'{"RecordType": "Delivery"}', 400, INVALID,
         [("body", NOT_A_RECORD + "Object missing required field `Recipient`")]),
        (_basic(SECRET), fixture("delivery").replace(b"Z\",", b"\","), 400, INVALID,
         [("body", NOT_A_RECORD + "Expected `datetime` with a timezone component - at `$.DeliveredAt`")]),
    ],
)  # fmt: skip
async def test_refused_deliveries_store_nothing(
    postmark_url: str,
    account: ApiAccount,
    db: Database,
    headers: dict,
    body: bytes,
    status: int,
    detail: str,
    errors: list[tuple[str, str]] | None,
) -> None:
    async with httpx.AsyncClient() as postmark:
        response = await postmark.post(postmark_url, content=body, headers={"Content-Type": "text/plain", **headers})

    extra = {"errors": [{"field": field, "message": message} for field, message in errors]} if errors else {}
    assert (response.status_code, response.json()) == (status, problem(status, response.reason_phrase, detail, **extra))
    assert await stored(db, account.id) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (fixture("delivery").replace(b"john@example.com", b"john at example.com"), "[0].email", "not an email address"),
        (fixture("open").replace(b"welcome-email", b"w" * 200), "[0].campaign_id", "Expected `str` of length <= 200"),
        # A time UTC cannot hold (year 1, an hour east of UTC): set aside, not a 500.
        (with_time(fixture("delivery"), "0001-01-01T00:00:00+01:00"), "[0].occurred_at", OUT_OF_RANGE),
        (with_time(fixture("delivery"), "9999-12-31T23:59:59-01:00"), "[0].occurred_at", OUT_OF_RANGE),
    ],
)
async def test_an_event_our_checks_refuse_is_set_aside_and_reported_not_refused_for_a_retry(
    postmark_url: str, account: ApiAccount, db: Database, body: bytes, field: str, message: str
) -> None:
    async with httpx.AsyncClient() as postmark:
        response = await postmark.post(postmark_url, content=body, headers=_basic(SECRET))

    # A 4xx would have Postmark retry a delivery that can never be stored, then give up on it.
    assert (response.status_code, response.json()) == (200, result(rejected=[{"field": field, "message": message}]))
    assert await stored(db, account.id) == (0, 0)


async def test_unknown_providers_tokens_and_unset_secrets_store_nothing(
    client: httpx.AsyncClient, api: str, account: ApiAccount, db: Database
) -> None:
    token = (await client.post("/api/webhooks/token")).json()["token"]
    names = ", ".join(provider["name"] for provider in (await client.get("/api/webhooks")).json()["providers"])

    async with httpx.AsyncClient(base_url=api, headers=_basic(SECRET)) as postmark:
        unknown_provider = await postmark.post(f"/webhooks/nope/{token}", content=fixture("delivery"))
        unknown_token = await postmark.post("/webhooks/postmark/wh_nope", content=fixture("delivery"))
        no_secret = await postmark.post(f"/webhooks/postmark/{token}", content=fixture("delivery"))
        await client.put("/api/webhooks/postmark", json={"secret": SECRET})
        too_big = await postmark.post(f"/webhooks/postmark/{token}", content=b" " * (16 * 1024 * 1024 + 1))

    assert unknown_provider.json() == problem(404, "Not Found", f"No such webhook provider 'nope': one of {names}.")
    assert unknown_token.json() == problem(
        404, "Not Found", "Unknown webhook token: make one with POST /api/webhooks/token."
    )
    assert no_secret.json() == problem(
        401,
        "Unauthorized",
        "No postmark secret is set for this account: set it with PUT /api/webhooks/postmark "
        "(or `contactreports webhooks set postmark SECRET`). Nothing was stored.",
    )
    assert too_big.json() == problem(
        413, "Request Entity Too Large", "The request body is larger than this server accepts."
    )
    assert await stored(db, account.id) == (0, 0)


@pytest.fixture(scope="module")
def rate_limited_api(database_url: str, redis_url: str, logs: Path) -> Iterator[str]:
    env = service_env(database_url, redis_url, ingest_rate_limit="1/minute", webhook_rate_limit="2/minute")
    process, url = start_api(env, logs, "webhook-limits")
    yield url
    process.stop()


async def test_webhooks_have_a_rate_limit_of_their_own(
    rate_limited_api: str, account: ApiAccount, db: Database
) -> None:
    async with (
        httpx.AsyncClient(base_url=rate_limited_api, headers=account.headers) as client,
        httpx.AsyncClient() as postmark,
    ):
        url = with_credentials(await webhook_url(client, "postmark", SECRET))
        # The API's ingestion allowance spent: webhooks count apart from it, and the reverse.
        await ingest(client, [{"email": JOHN, "action": "email.sent", "occurred_at": "2019-11-05T16:00:00Z"}])
        accepted = [await postmark.post(url, content=fixture(name)) for name in ("delivery", "click")]
        refused = await postmark.post(url, content=fixture("open"))
        one_more_batch = await client.post("/api/events", json=[])

    assert [response.status_code for response in [*accepted, refused, one_more_batch]] == [200, 200, 429, 429]
    retry_after = refused.headers["retry-after"]
    assert refused.json() == problem(
        429,
        "Too Many Requests",
        f"Too many webhook deliveries: this account may make 2 per 1 minute. Try again in {retry_after} s; "
        "nothing was stored.",
    )
    assert await stored(db, account.id) == (3, 1)  # the delivery and the click: one message, one tag


@pytest.fixture(scope="module")
def guarded_api(database_url: str, redis_url: str, logs: Path) -> Iterator[str]:
    """An API letting 3 deliveries an account's provider gets fail verification in 5 seconds."""
    process, url = start_api(
        service_env(database_url, redis_url, webhook_failure_limit="3/5 seconds"), logs, "webhook-failures"
    )
    yield url
    process.stop()


GUESS = "hooks:a-wrong-guess-of-the-password"


async def test_past_the_failed_verifications_allowed_deliveries_are_refused_unverified_for_a_while(
    guarded_api: str, new_account, db: Database
) -> None:
    ann, bob = await new_account(), await new_account()
    async with (
        httpx.AsyncClient(base_url=guarded_api, headers=ann.headers) as ann_api,
        httpx.AsyncClient(base_url=guarded_api, headers=bob.headers) as bob_api,
        httpx.AsyncClient() as provider,
    ):
        ann_url, bob_url = [await webhook_url(api, "postmark", SECRET) for api in (ann_api, bob_api)]
        await ann_api.put("/api/webhooks/brevo", json={"secret": "a-brevo-token-of-ann"})

        async def post(url: str, credentials: str) -> httpx.Response:
            return await provider.post(url, content=fixture("delivery"), headers=_basic(credentials))

        guesses = [await post(ann_url, GUESS) for _ in range(3)]
        one_guess_too_many = await post(ann_url, GUESS)
        the_right_password = await post(ann_url, SECRET)
        # The count is the account's, for one provider: Bob's token and Ann's Brevo are left alone.
        bob_guess, bob_right = await post(bob_url, GUESS), await post(bob_url, SECRET)
        ann_brevo = await provider.post(
            ann_url.replace("/postmark/", "/brevo/"),
            content=b'{"event": "deferred"}',
            headers={"Authorization": "Bearer a-brevo-token-of-ann"},
        )

        async def refused_while_the_failures_are_recent() -> httpx.Response | None:
            response = await post(ann_url, SECRET)
            assert response.status_code in (200, 429), response.text
            return response if response.status_code == 200 else None

        accepted = await wait_until(refused_while_the_failures_are_recent)

    assert [(r.status_code, r.json()) for r in guesses] == [(401, problem(401, "Unauthorized", WRONG))] * 3
    for refused in (one_guess_too_many, the_right_password):
        retry_after = refused.headers["retry-after"]
        assert 1 <= int(retry_after) <= 5
        assert (refused.status_code, refused.json()) == (
            429,
            problem(
                429,
                "Too Many Requests",
                "Too many postmark deliveries to this webhook token failed verification: at most 3 per 5 second "
                f"may fail. Try again in {retry_after} s; nothing was stored.",
            ),
        )
    assert [(r.status_code, r.json()) for r in (bob_guess, bob_right, ann_brevo)] == [
        (401, problem(401, "Unauthorized", WRONG)),
        (200, result(ingested=1)),
        (200, result(ignored={"deferred": 1})),
    ]
    assert (accepted.status_code, accepted.json()) == (200, result(ingested=1))
    assert [await stored(db, account.id) for account in (ann, bob)] == [(1, 1), (1, 1)]


async def test_without_redis_to_count_failures_a_delivery_is_a_503_to_retry(
    database_url: str, logs: Path, account: ApiAccount, db: Database
) -> None:
    env = service_env(database_url, f"redis://127.0.0.1:{free_port()}/0")
    process, api = start_api(env, logs, "webhooks-without-redis", redis=False)
    try:
        async with httpx.AsyncClient(base_url=api, headers=account.headers, timeout=30) as client:
            url = await webhook_url(client, "postmark", SECRET)
            response = await client.post(url, content=fixture("delivery"), headers=_basic(SECRET))
    finally:
        process.stop()

    assert (response.status_code, response.json()) == (
        503,
        problem(503, "Service Unavailable", "Redis is unavailable; try again. Nothing was stored."),
    )
    assert await stored(db, account.id) == (0, 0)


async def test_large_deliveries_are_worked_on_in_a_thread_small_ones_at_once() -> None:
    # A large delivery's CPU work (decoding, checking, a signature over it) must not hold up the
    # event loop, and so every other request; a small one is not worth the hand-over.
    def delivery(size: int) -> Delivery:
        return Delivery(headers={}, body=b"x" * size, received_at=0.0)

    loop_thread = threading.get_ident()

    assert await off_loop(delivery(OFF_LOOP_BYTES - 1), threading.get_ident) == loop_thread
    assert await off_loop(delivery(OFF_LOOP_BYTES), threading.get_ident) != loop_thread


def _parsed(body: bytes) -> dict:
    delivery = Delivery(headers={}, body=body, received_at=0.0)
    return msgspec.to_builtins(PostmarkAdapter().parse(delivery))


# Postmark's bounce-type table (https://postmarkapp.com/developer/api/bounce-api#bounce-types), in its
# order: each Type that is a failure, with its bounce_type...
POSTMARK_FAILURES = [
    ("HardBounce", "hard"), ("Transient", "soft"), ("DnsError", "soft"), ("SpamNotification", "soft"),
    ("Unknown", None), ("SoftBounce", "soft"), ("VirusNotification", "soft"), ("ChallengeVerification", "soft"),
    ("BadEmailAddress", "hard"), ("ManuallyDeactivated", None), ("Unconfirmed", None), ("Blocked", "soft"),
    ("SMTPApiError", None), ("DMARCPolicy", "soft"), ("TemplateRenderingFailed", None),
]  # fmt: skip
# ...and each that is a reply or notice, no failure to deliver the message.
POSTMARK_NOT_FAILURES = ["Unsubscribe", "Subscribe", "AutoResponder", "AddressChange", "OpenRelayTest", "InboundError"]


def _bounce_of_type(bounce_type: str) -> bytes:
    return fixture("bounce").replace(b'"Type": "HardBounce"', f'"Type": "{bounce_type}"'.encode())


@pytest.mark.parametrize(("bounce_type", "expected"), POSTMARK_FAILURES)
def test_postmarks_bounce_types_are_hard_soft_or_neither(bounce_type: str, expected: str | None) -> None:
    [event] = _parsed(_bounce_of_type(bounce_type))["events"]

    assert event["action"] == "email.bounced"
    assert (event["details"]["provider_event"], event["details"].get("bounce_type")) == (bounce_type, expected)


@pytest.mark.parametrize("bounce_type", POSTMARK_NOT_FAILURES)
def test_a_postmark_bounce_record_that_is_no_failure_is_counted_as_ignored(bounce_type: str) -> None:
    # An out-of-office reply (AutoResponder) is not a bounce: the message was delivered.
    parsed = _parsed(_bounce_of_type(bounce_type))
    assert (parsed["events"], parsed["campaigns"], parsed["ignored"]) == ([], {}, {f"Bounce:{bounce_type}": 1})


def _id_of(record: str, **changes: object) -> str:
    body = json.loads(fixture(record)) | changes
    return _parsed(json.dumps(body).encode())["events"][0]["id"]


def test_a_postmark_records_id_is_stable_and_names_record_message_recipient_and_time() -> None:
    delivery = _id_of("delivery")
    # What a redelivery may change, or what is not the record's identity: the same id.
    same = [
        _id_of("delivery", Tag="another-tag", MessageStream="broadcast", ServerID=99, Details="Other details"),
        _id_of("delivery", Metadata={"c_key": "c_value"}),
        # The same moment written with an offset, or the same to the microsecond (Postmark gives 7 digits).
        _id_of("delivery", DeliveredAt="2019-11-05T17:33:54.9070259+01:00"),
        _id_of("delivery", DeliveredAt="2019-11-05T16:33:54.9070256Z"),
    ]
    # Each part of the identity changed: another id each.
    others = [
        _id_of("delivery", RecordType="Open", ReceivedAt="2019-11-05T16:33:54.9070259Z"),
        _id_of("delivery", MessageID="983953f4-6105-42a2-a16a-77a8eac79483"),
        _id_of("delivery", Recipient="jane@example.com"),
        _id_of("delivery", DeliveredAt="2019-11-05T16:33:54.9070269Z"),  # a microsecond later
    ]

    assert re.fullmatch(r"postmark:[0-9a-f]{64}", delivery)
    assert same == [delivery] * len(same)
    assert delivery not in others
    assert len(set(others)) == len(others)
