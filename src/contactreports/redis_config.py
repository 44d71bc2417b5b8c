"""What REDIS_URL says: one Redis server, or a master found through Redis Sentinel; TLS; credentials.

    redis://[[user]:password@]host[:6379][/db]
    rediss://[[user]:password@]host[:6379][/db][?ssl_ca_certs=...&ssl_certfile=...&ssl_keyfile=...
                                               &ssl_cert_reqs=required|optional|none&ssl_check_hostname=true|false]
    redis+sentinel://[[user]:password@]host[:26379][,host[:26379]...]/master[/db][?sentinel_username=...
                                                                            &sentinel_password=...]
    rediss+sentinel://...  (TLS to the sentinels and to the master, with the ssl_* parameters above)

As in kombu and Celery, the credentials before `@` are the master's; sentinels that have a
password of their own (their `requirepass`) get `sentinel_password`. Only parsing lives here, no
client, so that config.py (and the store, which imports it) need not import redis: a bad URL
fails `Settings` at start, not at the first connection.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import msgspec

REDIS_PORT = 6379
SENTINEL_PORT = 26379
SCHEMES = ("redis", "rediss", "redis+sentinel", "rediss+sentinel")
TLS_PARAMETERS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
SENTINEL_PARAMETERS = ("sentinel_username", "sentinel_password")
CertReqs = Literal["required", "optional", "none"]


class Tls(msgspec.Struct, frozen=True, kw_only=True):
    """TLS options, named as redis-py names them."""

    ca_certs: str | None = None  # a PEM bundle of the CAs to trust; the system's when None
    certfile: str | None = None  # a client certificate (and its key, unless keyfile): Redis asks for one by default
    keyfile: str | None = None
    cert_reqs: CertReqs = "required"
    check_hostname: bool = True


class RedisTarget(msgspec.Struct, frozen=True, kw_only=True):
    # The server, or with master_name set, the sentinels to ask for the master's address.
    servers: tuple[tuple[str, int], ...]
    master_name: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: Tls | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """REDIS_URL -> RedisTarget; a ValueError saying what is wrong (the password left out) if it is bad."""
    shown = _without_password(url)
    try:
        return _parse(url)
    except ValueError as error:
        raise ValueError(f"REDIS_URL {shown!r}: {error}") from None


def _parse(url: str) -> RedisTarget:
    scheme, _, rest = url.partition("://")
    if scheme not in SCHEMES or not rest:
        raise ValueError("expected redis://, rediss:// (TLS), redis+sentinel:// or rediss+sentinel://")
    parts = urlsplit(url)
    if parts.fragment:
        raise ValueError("a URL fragment (#...) means nothing here")
    sentinel = scheme.endswith("+sentinel")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    servers = tuple(_address(host, SENTINEL_PORT if sentinel else REDIS_PORT) for host in hosts.split(","))
    if not sentinel and len(servers) > 1:
        raise ValueError("several hosts are only for Sentinel: redis+sentinel://host1,host2/master")
    master_name, db = _sentinel_path(parts.path) if sentinel else (None, _db(parts.path.removeprefix("/")))
    query = _query(parts.query, tls=scheme.startswith("rediss"), sentinel=sentinel)
    return RedisTarget(
        servers=servers,
        master_name=master_name,
        db=db,
        username=username,
        password=password,
        sentinel_username=query.pop("sentinel_username", None),
        sentinel_password=query.pop("sentinel_password", None),
        tls=_tls(query) if scheme.startswith("rediss") else None,
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    """`user:password`, `:password` (the default user) or nothing; percent-encoded."""
    if not userinfo:
        return None, None
    username, colon, password = userinfo.partition(":")
    if not colon:
        raise ValueError("credentials must be user:password@ or :password@ (the default user)")
    return unquote(username) or None, unquote(password)


def _address(host: str, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[ipv6]` or `[ipv6]:port`."""
    match = re.fullmatch(r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]/]+))(?::(?P<port>\d{1,5}))?", host)
    if match is None:
        raise ValueError(f"{host!r} is not a host or host:port")
    port = int(match["port"] or default_port)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return match["ipv6"] or match["name"], port


def _db(text: str) -> int:
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"the database must be a number (/0, /1...), got {text!r}")
    return int(text)


def _sentinel_path(path: str) -> tuple[str, int]:
    """`/master` or `/master/db`."""
    master_name, _, db = path.removeprefix("/").partition("/")
    if not master_name:
        raise ValueError("name the master the sentinels watch: redis+sentinel://host:26379/mymaster")
    return unquote(master_name), _db(db)


def _query(query: str, *, tls: bool, sentinel: bool) -> dict[str, str]:
    allowed = (TLS_PARAMETERS if tls else ()) + (SENTINEL_PARAMETERS if sentinel else ())
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    names = [name for name, _ in pairs]
    for name in names:
        if name not in allowed:
            takes = ", ".join(allowed) or "none"
            hint = "; the ssl_* ones are for rediss:// and rediss+sentinel://" if name in TLS_PARAMETERS else ""
            raise ValueError(f"unknown parameter {name!r} (this URL takes {takes}{hint})")
        if names.count(name) > 1:
            raise ValueError(f"parameter {name!r} is given more than once")
    return dict(pairs)


def _tls(query: dict[str, str]) -> Tls:
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if name in query and not Path(query[name]).is_file():
            raise ValueError(f"{name}: no such file {query[name]!r}")
    if "ssl_keyfile" in query and "ssl_certfile" not in query:
        raise ValueError("ssl_keyfile needs ssl_certfile (the client certificate it is the key of)")
    cert_reqs = query.get("ssl_cert_reqs", "required")
    if cert_reqs not in ("required", "optional", "none"):
        raise ValueError(f"ssl_cert_reqs must be required, optional or none, got {cert_reqs!r}")
    # A host name means nothing without verifying the certificate that should name it.
    check_hostname = _boolean("ssl_check_hostname", query.get("ssl_check_hostname", str(cert_reqs == "required")))
    if check_hostname and cert_reqs != "required":
        raise ValueError("ssl_check_hostname=true needs ssl_cert_reqs=required")
    return Tls(
        ca_certs=query.get("ssl_ca_certs"),
        certfile=query.get("ssl_certfile"),
        keyfile=query.get("ssl_keyfile"),
        cert_reqs=cert_reqs,
        check_hostname=check_hostname,
    )


def _boolean(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, got {text!r}")
    return text.lower() == "true"


def _without_password(url: str) -> str:
    """The URL with its passwords replaced by ***, for messages and logs."""
    scheme, separator, rest = url.partition("://")
    netloc_end = min((rest.index(c) for c in "/?#" if c in rest), default=len(rest))
    userinfo, at, hosts = rest[:netloc_end].rpartition("@")
    if ":" in userinfo:
        userinfo = userinfo.partition(":")[0] + ":***"
    shown = scheme + separator + userinfo + at + hosts + rest[netloc_end:]
    return re.sub(r"(sentinel_password=)[^&#]*", r"\1***", shown)
