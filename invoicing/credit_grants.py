"""Prepaid credit grants and the credit ledger, in the lake.

Grants are records written once (``credit_grants/grant_id=<id>``), never changed;
``credit_ledger/billing_month=M`` holds the run's drawdown and expiry entries
(``billing/credits.py``); ``credit_entries/entry_id=<id>`` the entries made by hand
(decrements, amendments, voids, expiry changes), each written once. A grant's balance
before a run is its amount plus every entry of the runs before it and every entry by hand
dated before the run's last invoice date (nothing, once it is voided), so grants and
entries together explain every balance.
A grant is checked whole before it is written: an ISO 4217 currency the customer is billed
in, an amount of that currency (``billing.money.check_amount``), a cost basis, its dates.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal, localcontext

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from billing import money, periods
from billing.catalog import Catalog, Customer
from billing.charges import run_span
from billing.credits import CreditsError, Entry, Grant, allocate, with_expiry_changes
from storage.duck import connect
from storage.lake import Lake
from storage.tables import CREDIT_ENTRIES as ENTRIES
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
    problems += cost_basis_problems(cost_basis)
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


def cost_basis_problems(cost_basis: Decimal) -> list[str]:
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


def recorded_grants(lake: Lake) -> list[Grant]:
    """The grants as written, in grant id order."""
    files = lake.all_files("credit_grants")
    if not files:
        return []
    rows = pq.read_table(files, partitioning=None, schema=GRANTS).to_pylist()
    return [Grant(**row) for row in sorted(rows, key=lambda r: r["grant_id"])]


def read_entries(lake: Lake) -> list[Entry]:
    """The entries made by hand, oldest first."""
    files = lake.all_files("credit_entries")
    if not files:
        return []
    rows = pq.read_table(files, partitioning=None, schema=ENTRIES).to_pylist()
    return [Entry(**row) for row in sorted(rows, key=lambda r: (r["created_at"],
                                                                r["entry_id"]))]


def read_grants(lake: Lake) -> list[Grant]:
    """The grants as billing sees them: each with its latest expiry change."""
    return with_expiry_changes(recorded_grants(lake), read_entries(lake))


def _run_entries(con: duckdb.DuckDBPyConnection, lake: Lake,
                 before: date | None = None) -> list[dict]:
    """The billing runs' ledger entries, of the months before ``before`` (every month's
    when None)."""
    files = [f for f in lake.all_files("credit_ledger")
             if before is None or date.fromisoformat(lake.partition_value(f)) < before]
    if not files:
        return []
    return con.sql(
        "SELECT entry_type, grant_id, customer_id, currency, entry_date, amount, invoice_id "
        "FROM read_parquet($files, hive_partitioning = false)",
        params={"files": files}).to_arrow_table().to_pylist()


def _balances(grants: list[Grant], run_entries: Iterable[dict],
              entries: Iterable[Entry]) -> dict[str, Decimal]:
    """Each grant's amount plus the runs' entries, the decrements and the amendments;
    nothing once voided."""
    balance = {g.grant_id: g.amount for g in grants}
    for row in run_entries:
        balance[row["grant_id"]] = balance.get(row["grant_id"], Decimal(0)) + row["amount"]
    voided = set()
    for entry in entries:
        if entry.entry_type in ("decrement", "amendment"):
            balance[entry.grant_id] = balance.get(entry.grant_id, Decimal(0)) + entry.amount
        elif entry.entry_type == "void":
            voided.add(entry.grant_id)
    return {grant_id: Decimal(0) if grant_id in voided else value
            for grant_id, value in balance.items()}


def balances_before(con: duckdb.DuckDBPyConnection, lake: Lake, grants: list[Grant],
                    month: date) -> dict[str, Decimal]:
    """Each grant's balance before the run for ``month``: amount + earlier runs' entries +
    entries by hand dated before the run's last invoice date (0 once voided)."""
    through = run_span(month)[1]
    return _balances(grants, _run_entries(con, lake, month),
                     [e for e in read_entries(lake) if e.entry_date < through])


def balances_now(con: duckdb.DuckDBPyConnection, lake: Lake) -> dict[str, Decimal]:
    """Each grant's balance after every entry recorded: every run's and every one by hand."""
    return _balances(recorded_grants(lake), _run_entries(con, lake), read_entries(lake))


def _grant_of(lake: Lake, customer_id: str, grant_id: str) -> Grant:
    grant = next((g for g in read_grants(lake)
                  if g.grant_id == grant_id and g.customer_id == customer_id), None)
    if grant is None:
        raise CreditsError([f"customer {customer_id!r} has no grant {grant_id!r}"])
    return grant


def _write(lake: Lake, entries: list[Entry]) -> list[Entry]:
    key = TABLES["credit_entries"].key
    for entry in entries:
        lake.write_partition("credit_entries", key, entry.entry_id,
                             pa.Table.from_pylist([asdict(entry)], schema=ENTRIES))
    return entries


def _entry_id() -> str:
    return f"entry_{uuid.uuid4().hex[:16]}"


def decrement(con: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str, currency: str,
              amount: Decimal, day: date, description: str, actor: str,
              now: datetime) -> list[Entry]:
    """Take ``amount`` off the customer's grants in ``currency`` in effect on ``day``, in
    the order a drawdown takes them: one entry per grant it touches. Raises CreditsError."""
    try:
        code = money.currency_code(currency)
        amount = money.check_amount(amount, code)
    except (money.UnknownCurrencyError, money.AmountError) as exc:
        raise CreditsError([str(exc)]) from exc
    grants = [g for g in read_grants(lake)
              if g.customer_id == customer_id and g.currency == code]
    balances = balances_now(con, lake)
    return _write(lake, [Entry(_entry_id(), "decrement", grant.grant_id, customer_id, code,
                               day, -part, None, description, actor, now)
                         for grant, part in allocate(amount, code, grants, balances, day)])


def amend(con: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str, grant_id: str,
          amount: Decimal, day: date, description: str, actor: str, now: datetime) -> Entry:
    """Give ``amount`` back to a grant (Orb's amendment: the reversal of a decrement on one
    block): at most what drawdowns and decrements took from it and earlier amendments have
    not given back, so a grant never holds more than it was granted. Raises CreditsError."""
    grant = _grant_of(lake, customer_id, grant_id)
    try:
        amount = money.check_amount(amount, grant.currency)  # positive, at the minor unit
    except money.AmountError as exc:
        raise CreditsError([str(exc)]) from exc
    entries = [e for e in read_entries(lake) if e.grant_id == grant_id]
    if any(e.entry_type == "void" for e in entries):
        raise CreditsError([f"grant {grant_id!r} is void"])
    taken = -sum((row["amount"] for row in _run_entries(con, lake)
                  if row["grant_id"] == grant_id and row["entry_type"] == "drawdown"),
                 Decimal(0))
    taken -= sum((e.amount for e in entries if e.entry_type in ("decrement", "amendment")),
                 Decimal(0))
    if amount > taken:
        raise CreditsError([f"amount: {amount} is more than the "
                            f"{money.quantize(taken, grant.currency)} taken from grant "
                            f"{grant_id!r} and not given back"])
    return _write(lake, [Entry(_entry_id(), "amendment", grant_id, customer_id,
                               grant.currency, day, amount, None, description, actor,
                               now)])[0]


def change_expiry(lake: Lake, customer_id: str, grant_id: str, new_expiry: date | None,
                  day: date, description: str, actor: str, now: datetime) -> Entry:
    """The grant expires on ``new_expiry`` (never: None) from now on. Raises CreditsError."""
    grant = _grant_of(lake, customer_id, grant_id)
    if new_expiry is not None and new_expiry <= grant.effective_date:
        raise CreditsError([f"target_expiry_date: {new_expiry} must be after the block's "
                            f"effective date {grant.effective_date}"])
    return _write(lake, [Entry(_entry_id(), "expiration_change", grant_id, customer_id,
                               grant.currency, day, Decimal(0), new_expiry, description,
                               actor, now)])[0]


def void(con: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str, grant_id: str,
         day: date, description: str, actor: str, now: datetime) -> Entry:
    """What is left of the grant is gone from ``day`` on. Raises CreditsError."""
    grant = _grant_of(lake, customer_id, grant_id)
    entries = read_entries(lake)
    if any(e.entry_type == "void" and e.grant_id == grant_id for e in entries):
        raise CreditsError([f"grant {grant_id!r} is already void"])
    left = balances_now(con, lake)[grant_id]
    return _write(lake, [Entry(_entry_id(), "void", grant_id, customer_id, grant.currency,
                               day, -left, None, description, actor, now)])[0]


@dataclass(frozen=True)
class LedgerRow:
    """One entry of a customer's ledger, with the grant's balance and the customer's
    balance in the currency after it."""

    entry_id: str
    entry_type: str  # grant | drawdown | expiry | decrement | amendment | expiration_change
    #                  | void
    grant_id: str
    currency: str
    entry_date: date
    amount: Decimal
    invoice_id: str | None
    grant_balance: Decimal
    balance: Decimal
    sequence: int  # 1 for the customer's first entry
    new_expiry_date: date | None
    description: str
    created_at: datetime | None  # None for a grant's and a run's entries


def ledger(con: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str) -> list[LedgerRow]:
    """A customer's grants and every entry on them in date order (on one day: grants,
    then the runs' entries, then those by hand as recorded), with running balances. A
    void takes what is left of its grant at that point."""
    rows: list[tuple[tuple, dict]] = []
    for grant in recorded_grants(lake):
        if grant.customer_id == customer_id:
            rows.append(((grant.effective_date, 0, grant.grant_id), {
                "entry_id": grant.grant_id, "entry_type": "grant", "grant_id": grant.grant_id,
                "currency": grant.currency, "entry_date": grant.effective_date,
                "amount": grant.amount, "invoice_id": None, "new_expiry_date": None,
                "description": grant.reason, "created_at": None}))
    for row in _run_entries(con, lake):
        if row["customer_id"] == customer_id:
            on = row["invoice_id"] or row["entry_date"]
            entry_id = f"{row['grant_id']}~{row['entry_type']}~{on}"
            rows.append(((row["entry_date"], 1, row["entry_type"], row["invoice_id"] or "",
                          row["grant_id"]), {
                "entry_id": entry_id, "entry_type": row["entry_type"],
                "grant_id": row["grant_id"], "currency": row["currency"],
                "entry_date": row["entry_date"], "amount": row["amount"],
                "invoice_id": row["invoice_id"], "new_expiry_date": None, "description": "",
                "created_at": None}))
    for entry in read_entries(lake):
        if entry.customer_id == customer_id:
            rows.append(((entry.entry_date, 2, entry.created_at.isoformat(), entry.entry_id), {
                "entry_id": entry.entry_id, "entry_type": entry.entry_type,
                "grant_id": entry.grant_id, "currency": entry.currency,
                "entry_date": entry.entry_date, "amount": entry.amount, "invoice_id": None,
                "new_expiry_date": entry.new_expiry_date, "description": entry.description,
                "created_at": entry.created_at}))
    grant_balance: defaultdict[str, Decimal] = defaultdict(Decimal)
    balance: defaultdict[str, Decimal] = defaultdict(Decimal)
    result = []
    for sequence, (_, row) in enumerate(sorted(rows, key=lambda r: r[0]), start=1):
        if row["entry_type"] == "void":
            row["amount"] = -grant_balance[row["grant_id"]]
        grant_balance[row["grant_id"]] += row["amount"]
        balance[row["currency"]] += row["amount"]
        result.append(LedgerRow(**row, grant_balance=grant_balance[row["grant_id"]],
                                balance=balance[row["currency"]], sequence=sequence))
    return result


def ledger_view(con: duckdb.DuckDBPyConnection, lake: Lake, customer_id: str) -> list[dict]:
    """``ledger`` as records, for the CLI."""
    return [asdict(row) for row in ledger(con, lake, customer_id)]


def balances_in_effect(lake: Lake, wanted: Collection[tuple[str, str]],
                       customers: Mapping[str, Customer], now: datetime
                       ) -> dict[tuple[str, str], Decimal]:
    """Each wanted (customer, currency)'s prepaid balance now: its grants in effect on the
    customer's today (``effective_date <= today < expiry_date``), after every entry
    recorded. What credit-balance alerts and top-ups compare."""
    if not wanted:
        return {}
    with closing(connect()) as con:
        left = balances_now(con, lake)
    totals: defaultdict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for grant in read_grants(lake):
        customer = customers.get(grant.customer_id)
        if (grant.customer_id, grant.currency) not in wanted or customer is None:
            continue
        today = periods.local_day(now, customer.timezone)
        if grant.effective_date <= today and (grant.expiry_date is None
                                              or today < grant.expiry_date):
            totals[(grant.customer_id, grant.currency)] += left.get(grant.grant_id,
                                                                    Decimal(0))
    return dict(totals)
