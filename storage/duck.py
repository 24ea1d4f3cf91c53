"""DuckDB connections configured the same way everywhere in the pipeline."""

from __future__ import annotations

import os

import duckdb


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A connection whose session time zone is UTC, so that naive timestamps and
    date arithmetic never depend on the machine's zone. ORB_DUCKDB_MEMORY_LIMIT
    and ORB_DUCKDB_THREADS cap resources (DuckDB spills to disk past the limit)."""
    con = _utc(duckdb.connect(database))
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
