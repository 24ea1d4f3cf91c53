"""The set-based adjustments and credit drawdown (invoicing/sql/) against the folds they
replaced: straightforward Python, one invoice at a time, kept here as the oracle."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import money
from billing.catalog.adjustments import ADJUSTMENT_TYPES
from billing.charges import run_span
from billing.credits import Grant
from invoicing.assembly import applied_adjustments
from storage.duck import connect
from storage.tables import AMOUNT
from storage.tables import CREDIT_LEDGER as LEDGER
from storage.tables import INVOICE_ADJUSTMENTS as ADJUSTMENTS
from tests.invoicing import Creditable, drawdown

ZERO = Decimal(0)
MONTH = date(2026, 10, 1)
CURRENCIES = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3, "CLF": 4}
CON = connect()  # one connection for every example: each registers its own tables


# -- the drawdown fold --------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    entry_type: str
    grant_id: str
    customer_id: str
    currency: str
    entry_date: date
    amount: Decimal
    invoice_id: str | None = None


def draw_down(grants: list[Grant], balances: dict[str, Decimal], invoices: list[Creditable],
              span: tuple[date, date]) -> list[Entry]:
    """Each invoice in date order takes, up to its creditable amount, from its customer's
    grants in its currency that it may use (effective < date <= expiry), soonest expiry
    first (none last), then earliest effective date, then grant id; then the expiries in
    ``span``, of what is left."""
    after, through = span
    left = {g.grant_id: balances.get(g.grant_id, g.amount) for g in grants}
    ordered = sorted(grants, key=lambda g: (g.expiry_date or date.max, g.effective_date,
                                            g.grant_id))
    entries = []
    for invoice in sorted(invoices, key=lambda i: (i.invoice_date, i.invoice_id)):
        need = invoice.amount
        for grant in ordered:
            if need <= 0:
                break
            usable = (grant.customer_id == invoice.customer_id
                      and grant.currency == invoice.currency
                      and grant.effective_date < invoice.invoice_date
                      and (grant.expiry_date is None
                           or invoice.invoice_date <= grant.expiry_date))
            if usable and left[grant.grant_id] > 0:
                take = min(need, left[grant.grant_id])
                left[grant.grant_id] -= take
                need -= take
                entries.append(Entry("drawdown", grant.grant_id, grant.customer_id,
                                     grant.currency, invoice.invoice_date, -take,
                                     invoice.invoice_id))
    entries += [Entry("expiry", g.grant_id, g.customer_id, g.currency, g.expiry_date,
                      -left[g.grant_id])
                for g in ordered
                if g.expiry_date and after < g.expiry_date <= through and left[g.grant_id] > 0]
    return entries


def minor(currency: str, draw: st.DrawFn, most: int) -> Decimal:
    return Decimal(draw(st.integers(0, most))).scaleb(-CURRENCIES[currency])


@st.composite
def credit_runs(draw: st.DrawFn):
    """Grants (some expiring or taking effect inside the month, some used up, some
    partly), and invoices on several dates per customer and currency."""
    customers = [f"c{i}" for i in range(draw(st.integers(1, 2)))]
    currencies = draw(st.lists(st.sampled_from(list(CURRENCIES)), min_size=1, max_size=2,
                               unique=True))
    first, last = run_span(MONTH)
    # any day around the month, often one on its edges
    edges = [first + timedelta(days=n) for n in (-1, 0, 1, 14)] + [
        last - timedelta(days=1), last, last + timedelta(days=1)]
    days = st.sampled_from(edges) | st.integers(-40, 40).map(lambda n: first + timedelta(days=n))
    grants, balances = [], {}
    for n in range(draw(st.integers(0, 10))):
        currency = draw(st.sampled_from(currencies))
        amount = minor(currency, draw, 5000) + Decimal(1)
        effective = draw(days)
        expiry = draw(st.none() | days | st.integers(1, 60).map(lambda n: first + timedelta(n)))
        if expiry is not None and expiry <= effective:
            expiry = effective + timedelta(days=1)
        grant = Grant(f"g{draw(st.integers(0, 3))}{n:02}", draw(st.sampled_from(customers)),
                      currency, amount, Decimal(1), effective, expiry)
        grants.append(grant)
        balance = draw(st.sampled_from(["none", "zero", "part", "all"]))
        if balance == "zero":
            balances[grant.grant_id] = ZERO
        elif balance == "part":
            balances[grant.grant_id] = amount - minor(currency, draw, 5000).min(amount)
        elif balance == "all":
            balances[grant.grant_id] = amount
    invoices, issued = [], {}
    for customer in customers:
        for currency in currencies:
            dates = draw(st.lists(st.integers(1, (last - first).days), max_size=4, unique=True))
            for day in dates:
                invoice_date = first + timedelta(days=day)
                invoice_id = f"{customer}-{invoice_date:%Y%m%d}-{currency}"
                invoices.append(Creditable(invoice_id, customer, currency, invoice_date,
                                           minor(currency, draw, 8000)))
                if draw(st.integers(0, 5)) == 0:  # issued, with the credits it took then
                    issued[invoice_id] = minor(currency, draw, 3000)
    return grants, balances, invoices, issued


def ledger_table(entries: list[Entry]) -> pa.Table:
    return pa.Table.from_pylist([asdict(e) for e in entries], schema=LEDGER)


@settings(max_examples=200, deadline=None)
@given(credit_runs())
def test_set_based_drawdown_is_the_fold(run):
    grants, balances, invoices, issued = run
    expected = draw_down(grants, balances,
                         [Creditable(i.invoice_id, i.customer_id, i.currency, i.invoice_date,
                                     issued.get(i.invoice_id, i.amount)) for i in invoices],
                         run_span(MONTH))
    ledger = drawdown(grants, balances, invoices, MONTH, issued, CON)
    assert ledger.to_pylist() == ledger_table(expected).to_pylist()
    assert ledger.equals(ledger_table(expected))


def test_drawdown_with_no_grants_or_no_invoices():
    invoice = Creditable("c-20261101-USD", "c", "USD", date(2026, 11, 1), Decimal("5.00"))
    assert drawdown([], {}, [invoice], MONTH).num_rows == 0
    grant = Grant("g", "c", "USD", Decimal("10.00"), Decimal(1), date(2026, 9, 1),
                  date(2026, 10, 31))
    assert drawdown([grant], {}, [], MONTH).to_pylist() == [
        {"entry_type": "expiry", "grant_id": "g", "customer_id": "c", "currency": "USD",
         "entry_date": date(2026, 10, 31), "amount": Decimal("-10.00"), "invoice_id": None}]


def test_a_grant_taking_effect_mid_month_is_drawn_before_an_older_one_by_its_expiry():
    # The plain two-running-sums allocation would let the Oct 10 invoice draw from
    # "soon", which takes effect on Oct 12; the Nov 1 invoice then takes "soon" first.
    grants = [Grant("old", "c", "USD", Decimal(10), Decimal(1), date(2026, 9, 1), None),
              Grant("soon", "c", "USD", Decimal(10), Decimal(1), date(2026, 10, 12),
                    date(2026, 12, 1))]
    invoices = [Creditable("c-20261010-USD", "c", "USD", date(2026, 10, 10), Decimal(4)),
                Creditable("c-20261101-USD", "c", "USD", date(2026, 11, 1), Decimal(12))]
    ledger = drawdown(grants, {}, invoices, MONTH)
    assert [(e["invoice_id"], e["grant_id"], e["amount"]) for e in ledger.to_pylist()] == [
        ("c-20261010-USD", "old", Decimal(-4)),
        ("c-20261101-USD", "soon", Decimal(-10)),
        ("c-20261101-USD", "old", Decimal(-2))]


# -- the adjustments fold -----------------------------------------------------------------

@dataclass(frozen=True)
class Scope:
    invoice_id: str
    subscription_id: str
    source: str
    adjustment_id: str
    adjustment_type: str
    # the amount, the fraction of a percentage discount, or what a usage discount took off
    # its lines (priced again: invoicing/usage_discounts.py), rounded and not above zero
    parameter: Decimal
    currency: str
    currency_exponent: int
    line_item_ids: tuple[str, ...]
    lines_amount: Decimal


def apply_adjustments(scopes: list[Scope]) -> list[dict]:
    """One invoice's adjustments in Orb's order (type, then id, source and lines), each on
    its lines plus the earlier ones whose lines lie within its own, rounded when made."""
    ordered = sorted(scopes, key=lambda s: (ADJUSTMENT_TYPES.index(s.adjustment_type),
                                            s.adjustment_id, s.source, s.line_item_ids))
    applied: list[dict] = []
    for scope in ordered:
        own = set(scope.line_item_ids)
        base = scope.lines_amount + sum(
            (a["amount"] for a in applied if set(a["line_item_ids"]) <= own), ZERO)
        if scope.adjustment_type == "usage_discount":
            amount = scope.parameter
        elif scope.adjustment_type == "amount_discount":
            amount = -min(scope.parameter, max(base, ZERO))
        elif scope.adjustment_type == "percentage_discount":
            amount = -money.quantize(base * scope.parameter, scope.currency)
        elif scope.adjustment_type == "minimum":
            amount = max(scope.parameter - base, ZERO)
        else:
            amount = -max(base - scope.parameter, ZERO)
        applied.append({"invoice_id": scope.invoice_id, "adjustment_id": scope.adjustment_id,
                        "adjustment_type": scope.adjustment_type, "source": scope.source,
                        "line_item_ids": list(scope.line_item_ids), "base": base,
                        "amount": money.quantize(amount, scope.currency)})
    return applied


SCOPES = pa.schema([
    ("invoice_id", pa.string()), ("subscription_id", pa.string()), ("source", pa.string()),
    ("adjustment_id", pa.string()), ("adjustment_type", pa.string()),
    ("parameter", pa.decimal128(38, 18)), ("currency", pa.string()),
    ("currency_exponent", pa.int32()), ("line_item_ids", pa.list_(pa.string())),
    ("lines_amount", AMOUNT),
])


@st.composite
def invoices_with_adjustments(draw: st.DrawFn):
    """Invoices of one or two subscriptions, each with its own lines and adjustments on
    some or all of them (several of a type, ids and sources that tie)."""
    scopes = []
    for n in range(draw(st.integers(1, 4))):
        currency = draw(st.sampled_from(list(CURRENCIES)))
        for subscription in [f"s{k}" for k in range(draw(st.integers(1, 2)))]:
            lines = {f"{subscription}:l{k}": minor(currency, draw, 100_000)
                     for k in range(draw(st.integers(1, 6)))}
            seen = set()
            for _ in range(draw(st.integers(0, 8))):
                kind = draw(st.sampled_from(ADJUSTMENT_TYPES))
                adjustment_id = draw(st.sampled_from(["a", "b", "c"]))
                source = draw(st.sampled_from(["plan p v1", f"subscription {subscription}",
                                               "coupon k"]))
                covered = tuple(sorted(draw(st.sets(st.sampled_from(sorted(lines)),
                                                    min_size=1))))
                if (kind, adjustment_id, source, covered) in seen:
                    continue
                seen.add((kind, adjustment_id, source, covered))
                parameter = (draw(st.decimals(min_value=Decimal("0.01"), max_value=1,
                                              places=2)
                                  | st.decimals(min_value=Decimal("1e-18"), max_value=1,
                                                places=18))
                             if kind == "percentage_discount" else
                             -minor(currency, draw, 10_000) if kind == "usage_discount" else
                             draw(st.decimals(min_value=Decimal("0.0001"), max_value=2000,
                                              places=4)))
                scopes.append(Scope(f"i{n}", subscription, source, adjustment_id, kind,
                                    parameter, currency, CURRENCIES[currency], covered,
                                    sum((lines[i] for i in covered), ZERO)))
    return scopes


@settings(max_examples=200, deadline=None)
@given(invoices_with_adjustments())
def test_set_based_adjustments_are_the_fold(scopes):
    CON.register("adjustment_scopes", pa.Table.from_pylist(
        [{**asdict(s), "line_item_ids": list(s.line_item_ids)} for s in scopes], schema=SCOPES))
    by_invoice: dict[str, list[Scope]] = {}
    for scope in scopes:
        by_invoice.setdefault(scope.invoice_id, []).append(scope)
    expected = pa.Table.from_pylist(
        [row for invoice in sorted(by_invoice) for row in apply_adjustments(by_invoice[invoice])],
        schema=ADJUSTMENTS)
    applied = applied_adjustments(CON)
    assert applied.to_pylist() == expected.to_pylist()
    assert applied.equals(expected)


def adjust(*scopes: Scope) -> list[tuple[str, Decimal, Decimal]]:
    CON.register("adjustment_scopes", pa.Table.from_pylist(
        [{**asdict(s), "line_item_ids": list(s.line_item_ids)} for s in scopes], schema=SCOPES))
    return [(a["adjustment_id"], a["base"], a["amount"])
            for a in applied_adjustments(CON).to_pylist()]


def test_a_percentage_is_rounded_once_from_the_exact_product():
    # 1.00 x 0.00495 = 0.00495: 0.00 to the cent, though 0.0050 to four places would
    # round up to 0.01. A third off 100.00 with 18 places: 33.333... -> 33.33.
    def pct(adjustment_id, fraction, lines_amount):
        return Scope("i", "s", "plan p v1", adjustment_id, "percentage_discount",
                     Decimal(fraction), "USD", 2, (f"l_{adjustment_id}",), Decimal(lines_amount))
    assert adjust(pct("a", "0.00495", "1.00"), pct("b", "0.333333333333333333", "100.00")) == [
        ("a", Decimal("1.00"), Decimal("0.00")), ("b", Decimal("100.00"), Decimal("-33.33"))]
