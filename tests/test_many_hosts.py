"""Many hosts: two API hosts and two worker hosts sharing only PostgreSQL and Redis.

Each host is a Linux network namespace of its own (a veth to a bridge in the root namespace, an
address on a private /24), with its own working folder and TMPDIR. PostgreSQL and Redis listen on
the bridge's address, so the hosts reach them over that network, as separate machines would; the
test reaches the API hosts the same way. Reports go through both API hosts, one worker host is
killed (SIGKILL to its whole process group) mid-report, and every report still ends done once,
with exactly the oracle's rows.

Needs root and iproute2's `ip` (CI runs as root); skipped where namespaces cannot be made.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network, ip_interface
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Process, service_env, wait_healthy, wait_until
from contactreports.cli.embedded_redis import start_redis, stop_redis
from contactreports.jobs.queue import job_id
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from helpers import ALL_EMAIL, all_rows, create_report, ingest, oracle, put_campaign
from postgres_server import PostgresServer

APIS = ["api-1", "api-2"]
WORKERS = ["worker-1", "worker-2"]
API_PORT = 8000  # every host has a network stack of its own: no port is taken twice
# /24s to pick from; one in use on this machine (another run's) is passed over.
SUBNETS = list(IPv4Network("10.213.0.0/16").subnets(new_prefix=24))
CONTACT = "ann@example.com"
OTHER_CONTACT = "bob@example.com"
CAMPAIGNS = {
    "spring": {"name": "Spring sale", "archived": False},
    "winter": {"name": "Winter sale", "archived": True},
}
ACCOUNTS = 8
EVENTS_PER_ACCOUNT = 2_700  # three in four of them the contact's
WINDOW = {"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}
# Tiny chunks: a report of a couple of thousand rows takes hundreds of them, long enough to be
# caught half done (with bigger ones, the test saw none processing). A heartbeat older than two
# seconds is a dead worker's (a live one beats every chunk), looked for every second. Two jobs a
# worker: of the eight reports, both workers hold some and some wait.
WORKER_SETTINGS = {
    "chunk_rows": 5,
    "stale_after_seconds": 2,
    "reconcile_every_seconds": 1,
    "max_attempts": 100,
    "max_jobs": 2,
}
DEADLINE_SECONDS = 90.0


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")


def why_no_namespaces() -> str | None:
    """Why network namespaces cannot be made here; None when they may (`ip netns add` still may refuse)."""
    if shutil.which("ip") is None:
        return "no `ip` command (Debian's iproute2 package) to make network namespaces with"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    return None


def unused_subnet() -> IPv4Network:
    listed = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True).stdout
    in_use = [ip_interface(address).network for address in re.findall(r"inet (\S+)", listed)]
    free = [subnet for subnet in SUBNETS if not any(subnet.overlaps(network) for network in in_use)]
    return random.choice(free)


@dataclass
class Network:
    """A bridge in the root namespace holding the subnet's first address; a namespace per host,
    joined to the bridge by a veth, with an address further up. Names are unique to this run."""

    subnet: IPv4Network
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    # Each host's namespace and address, by the host's name.
    places: dict[str, tuple[str, IPv4Address]] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"crb{self.tag}"  # interface names have at most 15 characters

    @property
    def gateway(self) -> IPv4Address:
        """The root namespace's address: PostgreSQL's and Redis's."""
        return self.subnet[1]

    def build(self, hosts: list[str]) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in hosts:
            self._add_namespace(host)

    def _add_namespace(self, host: str) -> None:
        index = len(self.places)
        namespace, address = f"cr-{self.tag}-{host}", self.subnet[10 + index]
        ip("netns", "add", namespace)
        self.places[host] = namespace, address
        veth = f"crv{self.tag}{index}"
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        ip("link", "set", veth, "master", self.bridge, "up")
        ip("-n", namespace, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")

    def remove(self) -> None:
        """All of it; a namespace's veth goes with it. Its processes must be gone first."""
        for namespace, _ in self.places.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@dataclass
class Host:
    """One `contactreports` process (and its children) in a namespace, in folders of its own."""

    name: str
    namespace: str
    address: IPv4Address
    process: Process

    @classmethod
    def start(cls, network: Network, name: str, args: list[str], env: dict[str, str], home: Path) -> Host:
        namespace, address = network.places[name]
        work, tmp = home / name / "work", home / name / "tmp"
        work.mkdir(parents=True)
        tmp.mkdir()
        process = Process(
            args,
            {**env, "TMPDIR": str(tmp)},
            home / f"{name}.log",
            launcher=("ip", "netns", "exec", namespace),
            cwd=work,
            start_new_session=True,  # its own process group: killed whole, as a machine going down
        )
        return cls(name, namespace, address, process)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{API_PORT}"

    def log(self) -> str:
        return self.process.log.read_text()

    def kill(self) -> None:
        try:
            os.killpg(self.process.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.popen.wait()


@dataclass
class Cluster:
    db: Database
    apis: list[Host]
    workers: list[Host]


@pytest.fixture
def network() -> Iterator[Network]:
    if reason := why_no_namespaces():
        pytest.skip(reason)
    network = Network(unused_subnet())
    try:
        try:
            network.build([*APIS, *WORKERS])
        except RuntimeError as error:  # no permission, say: a container without CAP_NET_ADMIN or CAP_SYS_ADMIN
            pytest.skip(f"cannot make the hosts' network namespaces: {error}")
        yield network
    finally:
        network.remove()


@pytest.fixture
def shared_services(network: Network, tmp_path: Path) -> Iterator[tuple[PostgresServer, str]]:
    """PostgreSQL and Redis on the bridge's address: the only things the hosts share."""
    postgres = PostgresServer(listen=f"{network.gateway}/{network.subnet.prefixlen}")
    redis_process = None
    try:
        postgres.start()
        redis_process, redis_url = start_redis(tmp_path / "redis", host=str(network.gateway))
        yield postgres, redis_url
    finally:
        if redis_process is not None:
            stop_redis(redis_process)
        postgres.close()


@pytest.fixture
async def cluster(
    network: Network, shared_services: tuple[PostgresServer, str], tmp_path: Path
) -> AsyncIterator[Cluster]:
    postgres, redis_url = shared_services
    database_url = postgres.url
    db = await Database.open(database_url)  # migrated before the hosts start
    hosts: list[Host] = []
    try:
        env = service_env(database_url, redis_url, **WORKER_SETTINGS)
        serve = ["serve", "--host", "0.0.0.0", "--port", str(API_PORT)]
        for names, args in [(APIS, serve), (WORKERS, ["worker"])]:
            hosts += [Host.start(network, name, args, env, tmp_path / "hosts") for name in names]
        apis, workers = hosts[: len(APIS)], hosts[len(APIS) :]
        for api in apis:
            try:
                wait_healthy(api.url, api.process.popen)
            except RuntimeError as error:
                raise RuntimeError(f"{error}; its log:\n{api.log()}") from error
        for worker in workers:
            await wait_until(_started(worker))
        yield Cluster(db, apis, workers)
    finally:
        for host in hosts:
            host.kill()
        await db.close()


def _started(worker: Host):
    async def polling() -> bool:
        if worker.process.popen.poll() is not None:
            raise AssertionError(f"{worker.name} exited:\n{worker.log()}")
        return "Starting worker for" in worker.log()

    return polling


@dataclass
class Contact:
    """An account's contact, its events, and the search on them; reports go through `reports_via`,
    events through the other API host."""

    reports_via: httpx.AsyncClient
    events_via: httpx.AsyncClient
    events: list[dict]
    search: dict[str, Any]

    def expected_rows(self) -> list[dict]:
        return oracle(self.events, CAMPAIGNS, **self.search)


def account_events(seed: int) -> list[dict]:
    """The contact's events and another contact's, interleaved; some ids sent twice."""
    rng = random.Random(seed)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    events = [
        {
            "id": f"e{n}",
            "email": rng.choice([CONTACT, CONTACT, CONTACT, OTHER_CONTACT]),
            "action": rng.choice(ALL_EMAIL),
            "occurred_at": (first + timedelta(minutes=29 * n, milliseconds=rng.randrange(1000))).isoformat(),
            "campaign_id": rng.choice([*CAMPAIGNS, None]),
        }
        for n in range(EVENTS_PER_ACCOUNT)
    ]
    return events + rng.sample(events, 50)


@pytest.fixture
async def contacts(cluster: Cluster) -> AsyncIterator[list[Contact]]:
    """ACCOUNTS accounts; account n's reports go through API host n % 2, its events through the other."""
    made = []
    for n in range(ACCOUNTS):
        _, api_key = await create_account(cluster.db, f"hosts-{n}")
        reports_host, events_host = cluster.apis[n % 2], cluster.apis[(n + 1) % 2]
        headers = {"Authorization": f"Bearer {api_key}"}
        reports_via = httpx.AsyncClient(base_url=reports_host.url, headers=headers, timeout=30)
        events_via = httpx.AsyncClient(base_url=events_host.url, headers=headers, timeout=30)
        for campaign_id, campaign in CAMPAIGNS.items():
            await put_campaign(events_via, campaign_id, campaign["name"], archived=campaign["archived"])
        events = account_events(seed=n)
        await ingest(events_via, events)
        search = {"email": CONTACT, "actions": ALL_EMAIL, **WINDOW, "include_archived": n % 2 == 0}
        made.append(Contact(reports_via, events_via, events, search))
    yield made
    for contact in made:
        await contact.reports_via.aclose()
        await contact.events_via.aclose()


async def reports(db: Database, report_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each report's row as the store holds it, with how many rows it has stored."""
    rows = await db.fetch_any_of(
        "SELECT id, status, error, run, attempts, scanned, total, row_count,"
        " (SELECT count(*) FROM report_rows WHERE report_pk = reports.pk) AS stored_rows"
        f" FROM reports WHERE {db.dialect.any_of('id', 'ids')}",
        {},
        "ids",
        report_ids,
    )
    return {row["id"]: dict(row) for row in rows}


def started_by(worker: Host, report_id: str) -> bool:
    """Whether `worker` took the report's first run from the queue (arq logs "→ job_id:function(...)")."""
    return f"→ {job_id(report_id, 1)}:" in worker.log()


async def test_two_api_hosts_and_two_worker_hosts_lose_no_report_when_a_worker_host_dies(
    cluster: Cluster, contacts: list[Contact]
) -> None:
    created_by: dict[str, list[str]] = {api.url: [] for api in cluster.apis}
    report_ids = []
    for contact in contacts:
        report_id = (await create_report(contact.reports_via, **contact.search))["id"]
        created_by[str(contact.reports_via.base_url).rstrip("/")].append(report_id)
        report_ids.append(report_id)
    expected = {report_id: contact.expected_rows() for report_id, contact in zip(report_ids, contacts, strict=True)}

    async def held_half_done() -> tuple[Host, str] | None:
        """A worker host and a report it is processing, less than half done."""
        for report_id, report in (await reports(cluster.db, report_ids)).items():
            if report["status"] == "processing" and 0 < report["scanned"] < (report["total"] or 0) / 2:
                for worker in cluster.workers:
                    if started_by(worker, report_id):
                        return worker, report_id
        return None

    victim, interrupted = await wait_until(held_half_done, timeout=DEADLINE_SECONDS)
    victim.kill()
    (survivor,) = [worker for worker in cluster.workers if worker is not victim]
    assert (await reports(cluster.db, [interrupted]))[interrupted]["status"] == "processing"  # killed mid-report

    async def all_finished() -> bool:
        finished = ("done", "failed")
        return all(report["status"] in finished for report in (await reports(cluster.db, report_ids)).values())

    await wait_until(all_finished, timeout=DEADLINE_SECONDS)
    final = await reports(cluster.db, report_ids)
    for contact, report_id in zip(contacts, report_ids, strict=True):
        rows, report = expected[report_id], final[report_id]
        assert rows, "a search with no rows proves nothing"
        outcome = (report["status"], report["error"], report["run"], report["row_count"], report["stored_rows"])
        assert outcome == ("done", None, 1, len(rows), len(rows))
        # Read back through the host that did not create it: both serve the one database.
        assert await all_rows(contact.events_via, report_id) == rows
    # The interrupted report was claimed again (by the survivor, the only worker left) and finished there.
    assert final[interrupted]["attempts"] >= 2
    assert started_by(survivor, interrupted)
    assert all(len(ids) == ACCOUNTS // 2 for ids in created_by.values())
    print(
        f"\n{victim.name} killed mid-report ({interrupted}); {survivor.name} finished it; "
        f"{len(report_ids)} reports done once, {sum(map(len, expected.values()))} rows compared"
    )
