"""A PostgreSQL server for the tests, started from the machine's binaries (``initdb``,
``pg_ctl``, ``postgres``) on loopback and a free port, its data in a folder of its own.

The server refuses to run as root, and the tests run as root in CI: then it runs as the
``postgres`` system user (``runuser``), which owns its data and socket folders."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

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


class PostgresServer:
    def __init__(self) -> None:
        self.bin = server_binaries()
        self.port = free_port()
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

    def start(self) -> PostgresServer:
        for folder in (self.data, self.sockets):
            folder.mkdir()
        if self.user:
            self.root.chmod(0o755)  # mkdtemp's 0700 would keep postgres out
            for path in (self.root, self.data, self.sockets):
                shutil.chown(path, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        options = (f"-k {self.sockets} -p {self.port} -c listen_addresses=127.0.0.1 "
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
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
