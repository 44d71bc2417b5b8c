"""A private PostgreSQL server for one test session: never the machine's shared one.

It runs from a temporary folder (data directory, unix socket, log) on a free port of 127.0.0.1
(or of another address of this machine, trusting the clients of its network: `listen`),
with settings for tests: no fsync (a crash of the machine may lose data; a crash of the server,
`stop("immediate")`, loses no commit), trust authentication, and connections enough for several API
and worker processes with their pools. Each test gets a database of its own.

The binaries are Debian's `postgresql` package's (the README's test command installs it).
initdb refuses to run as root, so as root the server runs as the package's `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from ipaddress import ip_interface
from pathlib import Path
from typing import Literal

import asyncpg

from contactreports.cli.embedded_redis import free_port

DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"
StopMode = Literal["fast", "immediate"]

# fsync and full_page_writes off: a test never needs its data to outlive the machine, and the
# writes of a whole suite go to the page cache only. synchronous_commit stays on: off, a commit is
# answered before its WAL leaves the server's memory, and `stop("immediate")` loses it (it lost a
# table created just before); with fsync off, writing the WAL at commit costs a write() only.
SETTINGS = {
    "max_connections": "200",
    "fsync": "off",
    "full_page_writes": "off",
}


def postgres_bin_dir() -> Path:
    """Where initdb, pg_ctl and postgres are: on PATH, else the newest of Debian's versions."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        # pg_ctl finds postgres next to its real file, not next to a symlink to it.
        return Path(on_path).resolve().parent
    versions = sorted(DEBIAN_BINARIES.glob("*/bin/initdb"), key=lambda path: int(path.parts[-3]))
    if not versions:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin:"
            " the README's test command installs Debian's `postgresql` package"
        )
    return versions[-1].parent


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root (initdb refuses root); None: ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root, the PostgreSQL server must run as another user, `{SERVER_USER}`,"
            " which Debian's `postgresql` package creates (the README's test command installs it)"
        ) from None


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder; `close()` stops it and removes the folder.

    `listen`: the address it listens on and, after the slash, the network whose clients it trusts
    (tests/test_many_hosts.py's hosts reach it from network namespaces of their own).
    """

    def __init__(self, user: str = "contactreports", database: str = "contactreports", listen: str = "127.0.0.1/32"):
        self.listen = ip_interface(listen)
        self.user = user
        self.database = database
        self.port = free_port()
        self.bin_dir = postgres_bin_dir()
        self._runs_as = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="contactreports-postgres-"))
        if self._runs_as is not None:
            os.chown(self.root, self._runs_as.pw_uid, self._runs_as.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"

    def url_of(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.listen.ip}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_of(self.database)

    @property
    def admin_url(self) -> str:
        """The maintenance database's URL, for creating and dropping databases."""
        return self.url_of("postgres")

    def start(self) -> None:
        """Start the server, made first if it never ran; again after `stop`, on the same port and data."""
        first = not (self.data / "PG_VERSION").exists()
        if first:
            self._initdb()
        self._run("pg_ctl", "start", "--wait", "--timeout=60", f"--log={self.log}", f"--pgdata={self.data}")
        if first:
            self._run(
                "createdb", f"--host={self.root}", f"--port={self.port}", f"--username={self.user}", self.database
            )

    def stop(self, mode: StopMode = "fast") -> None:
        """`immediate` is a crash: no checkpoint, so the next start recovers from the WAL."""
        self._run("pg_ctl", "stop", "--wait", f"--mode={mode}", f"--pgdata={self.data}")

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    def is_running(self) -> bool:
        status = self._command("pg_ctl", "status", f"--pgdata={self.data}")
        return subprocess.run(status, capture_output=True, cwd=self.root).returncode == 0

    def close(self) -> None:
        if self.is_running():
            self.stop("immediate")
        shutil.rmtree(self.root)

    def __enter__(self) -> PostgresServer:
        """Started; closed (stopped, its folder removed) when the block ends, however it ends."""
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def create_database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of the database `template` (which nothing may be
        connected to meanwhile); its name."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        await self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    async def drop_database(self, name: str) -> None:
        # FORCE: a process the test left connected does not keep the database alive.
        await self._admin(f'DROP DATABASE "{name}" WITH (FORCE)')

    async def _admin(self, statement: str) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    def _initdb(self) -> None:
        self._run(
            "initdb",
            f"--pgdata={self.data}",
            f"--username={self.user}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        )
        settings = {
            **SETTINGS,
            "listen_addresses": f"'{self.listen.ip}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        # initdb's lines trust the socket, 127.0.0.1 and ::1 only (the default listen repeats one).
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.listen.network} trust\n")

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / program), *args]
        if self._runs_as is not None:
            command = ["runuser", "-u", self._runs_as.pw_name, "--", *command]
        return command

    def _run(self, program: str, *args: str) -> None:
        # In our folder: the server's user may not enter the current directory.
        done = subprocess.run(self._command(program, *args), capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{log[-4000:]}")
