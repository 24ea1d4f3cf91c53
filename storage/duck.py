"""DuckDB connections configured the same way everywhere in the pipeline."""

from __future__ import annotations

import os
from functools import cache

import duckdb


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A connection whose session time zone is UTC, so that naive timestamps and
    date arithmetic never depend on the machine's zone. ORB_DUCKDB_MEMORY_LIMIT
    and ORB_DUCKDB_THREADS cap resources (DuckDB spills to disk past the limit).

    In memory, a connection of the process's one database: opening a database costs
    12-26 ms, a connection to it under 4 ms, and a billing run or an API request opens
    several. Its caps are the whole process's, read when it opens. What a connection
    registers, and its TEMP tables, views and macros, are its own; a table that is not
    TEMP would be every connection's (none is made here)."""
    if database == ":memory:":
        return cursor(_process_database(os.getpid()))
    return _configured(duckdb.connect(database))


@cache
def _process_database(pid: int) -> duckdb.DuckDBPyConnection:
    """The in-memory database of process ``pid``: a child forked after it was opened
    opens its own, since a database's threads do not survive a fork."""
    return _configured(duckdb.connect(":memory:"))


def _configured(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con = _utc(con)
    if limit := os.environ.get("ORB_DUCKDB_MEMORY_LIMIT"):
        con.execute("SET memory_limit = ?", [limit])
    if threads := os.environ.get("ORB_DUCKDB_THREADS"):
        con.execute("SET threads = ?", [int(threads)])
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Another connection to ``con``'s database, for another thread. The limits are the
    database's, but the time zone is per connection: a bare cursor has the machine's."""
    return _utc(con.cursor())


def _utc(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    con.execute("SET TimeZone = 'UTC'")
    return con
