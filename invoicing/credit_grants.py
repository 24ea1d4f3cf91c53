"""Prepaid credit grants and the credit ledger, in the lake.

Grants are records written once (``credit_grants/grant_id=<id>``), never changed;
``credit_ledger/billing_month=M`` holds the run's drawdown and expiry entries
(``billing/credits.py``). A grant's balance before a run is its amount plus every
entry of the runs before it, so grants and ledger together explain every balance.
A grant is checked whole before it is written: an ISO 4217 currency the customer is billed
in, an amount of that currency (``billing.money.check_amount``), a cost basis, its dates.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import date
from decimal import Decimal, localcontext

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from billing import money
from billing.catalog import Catalog
from billing.credits import Grant
from storage.lake import Lake
from storage.tables import CREDIT_GRANTS as GRANTS
from storage.tables import TABLES


class GrantError(ValueError):
    """A grant refused; ``problems`` are every field's, found in one pass."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("credit grant refused: " + "; ".join(problems))


def record_grant(lake: Lake, catalog: Catalog, customer_id: str, currency: str,
                 amount: Decimal, cost_basis: Decimal, effective_date: date,
                 expiry_date: date | None, reason: str = "",
                 grant_id: str | None = None) -> Grant:
    """Check the grant against ``catalog``'s customers (the state store's) and write it;
    the currency is taken in any case (``usd`` is ``USD``), the amount at its minor unit.
    Raises GrantError listing every problem."""
    problems: list[str] = []
    try:
        code = money.currency_code(currency)
    except money.UnknownCurrencyError as exc:
        problems.append(f"currency: {exc}")
        code = ""
    if customer_id not in {c.id for c in catalog.customers}:
        problems.append(f"unknown customer {customer_id!r}")
    elif code:
        billed_in = customer_currencies(catalog, customer_id)
        if code not in billed_in:
            problems.append(
                f"currency {code}: customer {customer_id!r} is billed in "
                f"{', '.join(sorted(billed_in))}; a grant pays only invoices in its currency"
                if billed_in else f"customer {customer_id!r} has no subscription, so no "
                f"currency a grant of {code} could pay in")
    try:
        if code:
            amount = money.check_amount(amount, code)
        else:
            money.check_magnitude(amount)
    except money.AmountError as exc:
        problems.append(str(exc))
    problems += _cost_basis_problems(cost_basis)
    if expiry_date is not None and expiry_date <= effective_date:
        problems.append(f"expiry {expiry_date} must be after effective date {effective_date}")
    grant = Grant(grant_id or f"grant_{uuid.uuid4().hex[:12]}", customer_id, code, amount,
                  cost_basis, effective_date, expiry_date, reason)
    key = TABLES["credit_grants"].key
    if lake.partition_file("credit_grants", key, grant.grant_id).exists():
        problems.append(f"grant {grant.grant_id!r} already exists; grants are never changed")
    if problems:
        raise GrantError(problems)
    lake.write_partition("credit_grants", key, grant.grant_id,
                         pa.Table.from_pylist([asdict(grant)], schema=GRANTS))
    return grant


def customer_currencies(catalog: Catalog, customer_id: str) -> set[str]:
    """The currencies of the plans on any phase of the customer's subscriptions."""
    plans = {p.id: p.currency for p in catalog.plans}
    return {plans[phase.plan_id] for s in catalog.subscriptions if s.customer_id == customer_id
            for phase in s.plan_phases if phase.plan_id in plans}


def _cost_basis_problems(cost_basis: Decimal) -> list[str]:
    """The cost basis must be a number the column's DECIMAL(p, s) holds, not negative."""
    kind = GRANTS.field("cost_basis").type
    assert isinstance(kind, pa.Decimal128Type)
    if not cost_basis.is_finite() or cost_basis < 0:
        return [f"cost_basis {cost_basis} must be a number, zero or more"]
    with localcontext(prec=kind.precision + 1):  # exact at the column's own width
        fits = (cost_basis < Decimal(10) ** (kind.precision - kind.scale)
                and cost_basis == cost_basis.quantize(Decimal(1).scaleb(-kind.scale)))
    return [] if fits else [f"cost_basis {cost_basis} does not fit DECIMAL({kind.precision}, "
                            f"{kind.scale})"]


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
        "SELECT effective_date AS entry_date, 'grant' AS entry_type, grant_id, currency, "
        "amount, NULL AS invoice_id FROM credit_grants) "
        "SELECT *, sum(amount) OVER (PARTITION BY grant_id ORDER BY entry_date, "
        "entry_type <> 'grant', invoice_id ROWS UNBOUNDED PRECEDING) AS grant_balance "
        "FROM entries WHERE grant_id IN (SELECT grant_id FROM credit_grants "
        "WHERE customer_id = $customer) ORDER BY entry_date, entry_type <> 'grant', grant_id, "
        "invoice_id",
        params={"customer": customer_id, **({"files": files} if files else {})},
    ).to_arrow_table().to_pylist()
