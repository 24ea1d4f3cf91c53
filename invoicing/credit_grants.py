"""Prepaid credit grants and the credit ledger, in the lake.

Grants are records written once (``credit_grants/grant_id=<id>``), never changed;
``credit_ledger/billing_month=M`` holds the run's drawdown and expiry entries
(``billing/credits.py``). A grant's balance before a run is its amount plus every
entry of the runs before it, so grants and ledger together explain every balance.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from billing import money
from billing.credits import Grant
from storage.lake import Lake
from storage.tables import CREDIT_GRANTS as GRANTS
from storage.tables import TABLES


def record_grant(lake: Lake, customer_id: str, currency: str, amount: Decimal,
                 cost_basis: Decimal, effective_date: date, expiry_date: date | None,
                 reason: str = "", grant_id: str | None = None) -> Grant:
    if amount <= 0 or money.quantize(amount, currency) != amount:
        raise ValueError(f"a grant amount must be positive and in whole minor units of "
                         f"{currency}, got {amount}")
    if cost_basis < 0:
        raise ValueError(f"cost basis must not be negative, got {cost_basis}")
    if expiry_date is not None and expiry_date <= effective_date:
        raise ValueError(f"expiry {expiry_date} must be after effective date {effective_date}")
    grant = Grant(grant_id or f"grant_{uuid.uuid4().hex[:12]}", customer_id, currency, amount,
                  cost_basis, effective_date, expiry_date, reason)
    key = TABLES["credit_grants"].key
    if lake.partition_file("credit_grants", key, grant.grant_id).exists():
        raise ValueError(f"grant {grant.grant_id!r} already exists; grants are never changed")
    lake.write_partition("credit_grants", key, grant.grant_id,
                         pa.Table.from_pylist([asdict(grant)], schema=GRANTS))
    return grant


def read_grants(lake: Lake) -> list[Grant]:
    files = lake.all_files("credit_grants")
    if not files:
        return []
    rows = pq.read_table(files, partitioning=None, schema=GRANTS).to_pylist()
    return [Grant(**row) for row in sorted(rows, key=lambda r: r["grant_id"])]


def balances_before(con: duckdb.DuckDBPyConnection, lake: Lake, grants: list[Grant],
                    month: date) -> dict[str, Decimal]:
    """Each grant's balance before the run for ``month``: amount + earlier entries."""
    earlier = [f for f in lake.all_files("credit_ledger")
               if date.fromisoformat(lake.partition_value(f)) < month]
    moved: dict[str, Decimal] = {}
    if earlier:
        rows = con.execute(
            "SELECT grant_id, sum(amount) FROM read_parquet($files, hive_partitioning = false) "
            "GROUP BY grant_id", {"files": earlier}).fetchall()
        moved = dict(rows)
    return {g.grant_id: g.amount + moved.get(g.grant_id, Decimal(0)) for g in grants}


def ledger_view(con: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str) -> list[dict]:
    """A customer's grants, drawdowns and expiries in date order, with each grant's
    running balance."""
    grants = pa.Table.from_pylist([g.__dict__ for g in read_grants(lake)], schema=GRANTS)
    con.register("credit_grants", grants)
    files = lake.all_files("credit_ledger")
    movements = ("SELECT entry_date, entry_type, grant_id, currency, amount, invoice_id "
                 "FROM read_parquet($files, hive_partitioning = false) UNION ALL "
                 if files else "")
    return con.sql(
        "WITH entries AS (" + movements +
        "SELECT effective_date, 'grant', grant_id, currency, amount, NULL FROM credit_grants) "
        "SELECT *, sum(amount) OVER (PARTITION BY grant_id ORDER BY entry_date, "
        "entry_type <> 'grant', invoice_id ROWS UNBOUNDED PRECEDING) AS grant_balance "
        "FROM entries WHERE grant_id IN (SELECT grant_id FROM credit_grants "
        "WHERE customer_id = $customer) ORDER BY entry_date, entry_type <> 'grant', grant_id, "
        "invoice_id",
        params={"customer": customer_id, **({"files": files} if files else {})},
    ).to_arrow_table().to_pylist()
