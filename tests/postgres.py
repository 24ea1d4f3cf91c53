"""A PostgreSQL server for the tests, started from the machine's binaries (``initdb``,
``pg_ctl``, ``postgres``) on loopback and a free port, its data in a folder of its own.

The server refuses to run as root, and the tests run as root in CI: then it runs as the
``postgres`` system user (``runuser``), which owns its data and socket folders.

By default it listens on 127.0.0.1 and a free port and trusts every connection. A test of
a configuration that names a fixed port (the production Dagster instance's 5432) passes
``host=free_loopback_address(5432), port=5432``, and ``hba`` lines that make a role log in
with its password (``create_role``)."""

from __future__ import annotations

import glob
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

from tests.servers import free_port

TOOLS = ("initdb", "pg_ctl", "postgres")
INSTALL = ("PostgreSQL's server binaries (initdb, pg_ctl, postgres) are not on PATH nor in "
           "/usr/lib/postgresql/*/bin: install them (Debian: apt-get install postgresql; "
           "`make test` does)")


def server_binaries() -> Path:
    """The folder holding initdb, pg_ctl and postgres; raises with what to install."""
    found = shutil.which("initdb")
    if found and all(shutil.which(tool) for tool in TOOLS):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if all((Path(folder) / tool).exists() for tool in TOOLS):
            return Path(folder)
    raise RuntimeError(INSTALL)


def free_loopback_address(port: int) -> str:
    """An address of 127.0.0.0/8 (all loopback on Linux) on which ``port`` is free, so that
    a server can take a fixed port without meeting one already on 127.0.0.1."""
    for _ in range(20):
        host = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return host
    raise RuntimeError(f"port {port} is taken on every loopback address tried (a server "
                       f"listening on 0.0.0.0:{port}?)")


class PostgresServer:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.bin = server_binaries()
        self.host = host
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="orb-postgres-"))
        self.data, self.sockets, self.log = (self.root / "data", self.root / "sockets",
                                             self.root / "server.log")
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("the tests run as root and PostgreSQL will not: they run "
                                   "it as the postgres user, which does not exist (apt-get "
                                   "install postgresql creates it)") from None
            self.user = "postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {result.stdout}{result.stderr}"
                               f"{log}")

    def start(self, hba: tuple[str, ...] = ()) -> PostgresServer:
        """Create the cluster and start it; ``hba`` lines go first in pg_hba.conf (the
        first line that matches a connection decides; the rest trust everyone)."""
        for folder in (self.data, self.sockets):
            folder.mkdir()
        if self.user:
            self.root.chmod(0o755)  # mkdtemp's 0700 would keep postgres out
            for path in (self.root, self.data, self.sockets):
                shutil.chown(path, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        if hba:
            rules = self.data / "pg_hba.conf"  # written in place: it stays postgres's
            rules.write_text("\n".join(hba) + "\n" + rules.read_text())
        options = (f"-k {self.sockets} -p {self.port} -c listen_addresses={self.host} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log),
                  "start", "-w", "-t", "60")
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "stop", "-m", "fast", "-w")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def create_database(self, name: str, owner: str | None = None) -> str:
        owned = f' OWNER "{owner}"' if owner else ""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"{owned}')
        return self.url(name)

    def create_role(self, name: str, password: str) -> None:
        """A role that logs in (with its password where an ``hba`` line asks for one)."""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)))
