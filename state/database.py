"""Connecting to the state store's database and upgrading it to the newest schema.

SQLite (a file, the default) or PostgreSQL, by SQLAlchemy URL. Writers are serialized:
on SQLite a write transaction starts with ``BEGIN IMMEDIATE``, on PostgreSQL it takes
a transaction-scoped advisory lock, so a write's checks and its rows see the same state.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock's key for the state store's writers ("orbstate" in ASCII, cut)
WRITE_LOCK = 0x6F72627374617465 & 0x7FFFFFFFFFFFFFFF


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url``; a SQLite file's folder is created, a plain
    ``postgresql://`` URL uses psycopg 3."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        engine = sa.create_engine(parsed, pool_pre_ping=True)
        if parsed.get_backend_name() == "postgresql":
            sa.event.listen(engine, "connect", _postgres_connect)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": 60})
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _postgres_connect(dbapi_connection: Any, _record: Any) -> None:
    # Instants come back in UTC (state/rows.py reads them without converting).
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
    dbapi_connection.commit()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own BEGIN is turned off; _sqlite_begin says which BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")  # readers do not wait for a writer
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get("state_write", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction, committed when the block ends without an exception; one
    writer at a time."""
    with engine.connect() as connection:
        connection.execution_options(state_write=True)
        with connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK)))
            yield connection


@contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read transaction that sees one consistent state."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            yield connection


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache
def _head() -> str | None:
    """The newest migration: read from the migrations folder once per process (it is the
    code's; reading it costs more than the query that compares the database to it)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest migration (a new SQLite file or an empty
    PostgreSQL database gets every table); nothing to do when it is there already."""
    config = alembic_config()
    head = _head()
    with reading(engine) as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
    with writing(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
