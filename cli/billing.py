"""``orb invoices``, ``orb credits`` and ``orb rerate``: the invoice lifecycle on the CLI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from rich.table import Table

from assets.resources import OrbStore
from assets.thresholds import run_thresholds
from billing import money, periods
from billing.credits import CreditsError
from billing.credits import Entry as CreditEntry
from cli.documents import (
    invoices_auto_issue,
    invoices_create,
    invoices_issue_one_off,
    known_customer,
)
from cli.options import DATA_DIR, FORMAT, default_actor, existing_data_dir, period_option
from cli.output import console, emit
from cli.top_ups import top_up_group
from invoicing import credit_grants as credits
from invoicing import documents
from invoicing.document_model import DocumentStatus
from invoicing.issuing import IssueRefused, drafts
from invoicing.rerate import preview
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql.run_catalog import current_catalog
from reports.documents import issue_and_render, render_issued
from state.lake_snapshot import SnapshotMissing
from storage.billing_runs import RUNS, MixedBillingRun
from storage.duck import connect
from storage.lake import Lake
from storage.settings import Settings
from webhooks.publish import after_lake_write


def _settings(data_dir: Path) -> Settings:
    return Settings.from_env(existing_data_dir(data_dir))


def _known_customer(settings: Settings, customer_id: str | None) -> None:
    """An unknown --customer is an error, not an empty listing that looks like 'nothing'."""
    if customer_id is not None:
        known_customer(settings, customer_id)


def _billed_months(lake: Lake) -> list[date]:
    """The months a billing run wrote, oldest first (a month billed before runs were
    recorded has invoices but no commit)."""
    files = lake.all_files(RUNS) + lake.all_files("invoices")
    return sorted({date.fromisoformat(Lake.partition_value(f)) for f in files})


def _money(amount: Decimal | None, currency: str) -> str:
    return "-" if amount is None else money.format_money(amount, currency)


def _amount(amount: Decimal | None, currency: str) -> Decimal | None:
    """At the currency's minor unit, as on the invoice (the lake keeps a wider scale)."""
    return None if amount is None else money.quantize(amount, currency)


@click.group()
def invoices() -> None:
    """Drafts, issuing, payment and voiding of invoices and credit notes."""


INVOICE_FIELDS = ("number", "type", "invoice", "customer", "date", "due", "total", "currency",
                  "status")


@invoices.command("list")
@period_option()
@click.option("--customer", "customer_id")
@FORMAT
@DATA_DIR
def invoices_list(period: date | None, customer_id: str | None, output_format: str,
                  data_dir: Path) -> None:
    """Issued documents with their status; with --period, that month's drafts too."""
    settings = _settings(data_dir)
    _known_customer(settings, customer_id)
    lake, con = settings.lake, connect()
    records: list[dict[str, object]] = []
    status = documents.statuses(con, lake)
    for issued in documents.issued_documents(lake):
        if (period is None or issued.billing_month == period) and (
                customer_id is None or issued.customer_id == customer_id):
            records.append(dict(zip(INVOICE_FIELDS, (
                issued.number, issued.document_type, issued.invoice_id, issued.customer_id,
                issued.invoice_date, issued.due_date, _amount(issued.total, issued.currency),
                issued.currency,
                status[issued.number]), strict=True)))
    if period is not None:
        try:
            month_drafts = drafts(con, lake, period)
        except MixedBillingRun as exc:
            raise click.ClickException(str(exc)) from exc
        for draft in month_drafts:
            head = draft.head
            if customer_id is None or head.customer_id == customer_id:
                records.append(dict(zip(INVOICE_FIELDS, (
                    None, head.document_type, head.reference, head.customer_id,
                    head.invoice_date, head.due_date, _amount(head.total, head.currency),
                    head.currency, "draft"),
                    strict=True)))
    emit(output_format, "Invoices and credit notes", INVOICE_FIELDS, records,
         ("number", "type", "invoice", "customer", "date", "due", "total", "status"),
         lambda r: (r["number"] or "-", r["type"], r["invoice"], r["customer"], str(r["date"]),
                    str(r["due"]), _money(r["total"], r["currency"]), r["status"]),
         right=("total",))


@invoices.command("issue")
@period_option(required=True)
@click.option("--customer", "customers", multiple=True, help="Only these customers.")
@DATA_DIR
def invoices_issue(period: date, customers: tuple[str, ...], data_dir: Path) -> None:
    """Number and freeze the month's drafts; write each as HTML and PDF."""
    try:
        issued, folder = issue_and_render(_settings(data_dir), period, set(customers) or None)
    except (MixedBillingRun, IssueRefused) as exc:
        raise click.ClickException(str(exc)) from exc
    after_lake_write(_settings(data_dir), datetime.now(UTC))  # invoice.issued (webhooks)
    for number, draft in issued:
        head = draft.head
        console.print(f"{number}  {head.document_type:<18} {head.reference:<28} "
                      f"{_money(head.total, head.currency)}")
    console.print(f"Issued {len(issued)} documents; HTML and PDF in {folder}")


@invoices.command("render")
@period_option(help="Billing month, YYYY-MM (default: all).")
@DATA_DIR
def invoices_render(period: date | None, data_dir: Path) -> None:
    """Write the HTML and PDF of issued documents whose files are missing."""
    settings = _settings(data_dir)
    folder, count = render_issued(settings.lake, current_catalog(settings), settings.issuer,
                                  period)
    console.print(f"Rendered {count} documents into {folder}")


def _as_of(_ctx: click.Context, _param: click.Parameter, value: str | None,
           ) -> datetime | None:
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.ClickException(f"--as-of: expected an ISO 8601 instant, got {value!r}"
                                   ) from exc
    if instant.tzinfo is None:
        raise click.ClickException(f"--as-of: {value!r} needs a UTC offset, e.g. {value}Z")
    return instant


@invoices.command("threshold-run")
@period_option(help="Billing month whose open periods are evaluated, YYYY-MM "
               "[default: --as-of's month].")
@click.option("--as-of", callback=_as_of, help="Evaluate at this ISO 8601 instant: usage "
              "up to the customer's midnight that starts its day [default: now].")
@DATA_DIR
def invoices_threshold_run(period: date | None, as_of: datetime | None,
                           data_dir: Path) -> None:
    """Issue the threshold invoices due: each subscription whose open period's usage not
    yet invoiced reaches its invoicing threshold (docs/invoicing.md#threshold-invoices)."""
    settings = _settings(data_dir)
    at = as_of or datetime.now(UTC)
    month = period or at.date().replace(day=1)
    try:
        issued = run_thresholds(settings, month, at)
    except SnapshotMissing as exc:
        raise click.ClickException(str(exc)) from exc
    for item in issued:
        head = item.draft.head
        console.print(f"{item.number}  {head.invoice_id:<40} {head.invoice_date}  "
                      f"{_money(head.total, head.currency)}")
    console.print(f"Issued {len(issued)} threshold invoices"
                  + (f"; bill {month:%Y-%m} again (`orb bill --period {month:%Y-%m}`) for its "
                     "final drafts to take them off" if issued else ""))


def _set_status(number: str, status: DocumentStatus, note: str, data_dir: Path) -> None:
    try:
        documents.change_status(_settings(data_dir).lake, number, status,
                                datetime.now(UTC), note)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    after_lake_write(_settings(data_dir), datetime.now(UTC))  # its webhook event
    console.print(f"{number} is now {status}")


@invoices.command("pay")
@click.argument("number")
@click.option("--note", default="", help="e.g. the payment reference.")
@DATA_DIR
def invoices_pay(number: str, note: str, data_dir: Path) -> None:
    """Mark an issued invoice paid."""
    _set_status(number, "paid", note, data_dir)


@invoices.command("void")
@click.argument("number")
@click.option("--reason", required=True, help="Why, for the audit trail.")
@DATA_DIR
def invoices_void(number: str, reason: str, data_dir: Path) -> None:
    """Void an issued, unpaid invoice; the next run of its month drafts it afresh."""
    _set_status(number, "void", reason, data_dir)


# Documents made by hand: one-off invoices and auto-issue (cli/documents.py).
invoices.add_command(invoices_create)
invoices.add_command(invoices_issue_one_off)
invoices.add_command(invoices_auto_issue)


@click.group("credits")
def credits_group() -> None:
    """Prepaid credit grants and the credit ledger."""


def _decimal(_ctx, _param, value):
    if value is None:
        return None
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"expected a decimal number, got {value!r}") from exc


def _day(_ctx, _param, value):
    try:
        return None if value is None else date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc


@credits_group.command("grant")
@click.option("--customer", "customer_id", required=True)
@click.option("--amount", required=True, callback=_decimal)
@click.option("--currency", required=True)
@click.option("--cost-basis", default="0", callback=_decimal, show_default=True,
              help="What the customer paid per credit (1 for purchased, 0 for free).")
@click.option("--effective", required=True, callback=_day, help="YYYY-MM-DD, customer's date.")
@click.option("--expires", callback=_day, help="YYYY-MM-DD; never, if omitted.")
@click.option("--reason", default="")
@DATA_DIR
def credits_grant(customer_id, amount, currency, cost_basis, effective, expires, reason,
                  data_dir) -> None:
    """Record a credit grant (never changed afterwards); re-run the months it affects."""
    settings = _settings(data_dir)
    try:
        grant = credits.record_grant(settings.lake, current_catalog(settings), customer_id,
                                     currency, amount, cost_basis, effective, expires, reason)
    except credits.GrantError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(f"Granted {_money(grant.amount, grant.currency)} to {customer_id} as "
                  f"{grant.grant_id}, effective {effective}, expires {expires or 'never'}")


@credits_group.command("ledger")
@click.option("--customer", "customer_id", required=True)
@FORMAT
@DATA_DIR
def credits_ledger(customer_id: str, output_format: str, data_dir: Path) -> None:
    """A customer's grants and every entry on them, with each grant's running balance."""
    settings = _settings(data_dir)
    _known_customer(settings, customer_id)
    emit(output_format, f"Credit ledger of {customer_id}",
         ("entry_date", "entry_type", "grant_id", "invoice_id", "amount", "grant_balance",
          "currency"),
         [{**row, "amount": _amount(row["amount"], row["currency"]),
           "grant_balance": _amount(row["grant_balance"], row["currency"])}
          for row in credits.ledger_view(connect(), settings.lake, customer_id)],
         ("date", "entry", "grant", "invoice", "amount", "grant balance"),
         lambda r: (str(r["entry_date"]), r["entry_type"], r["grant_id"], r["invoice_id"] or "",
                    _money(r["amount"], r["currency"]),
                    _money(r["grant_balance"], r["currency"])),
         right=("amount", "grant balance"))


# what ``orb credits decrement|amend|expire|void`` have in common: who and when
ENTRY_DATE = click.option("--date", "day", callback=_day,
                          help="YYYY-MM-DD, customer's date [default: the customer's today].")
ACTOR = click.option("--actor", help="Who makes the change [default: the OS user, else cli].")


def _entry(settings: Settings, customer_id: str, day: date | None, actor: str | None,
           write: Callable[[date, str, datetime], list[CreditEntry]]) -> None:
    """Write an entry by hand for a known customer, dated ``day`` or the customer's today
    (as the API dates it); a refusal exits 1 naming why."""
    customer = known_customer(settings, customer_id)
    now = datetime.now(UTC)
    try:
        entries = write(day or periods.local_day(now, customer.timezone),
                        actor or default_actor(), now)
    except CreditsError as exc:
        raise click.ClickException(str(exc)) from exc
    for entry in entries:
        console.print(f"Recorded {entry.entry_type} {entry.entry_id} of {entry.grant_id} "
                      f"on {entry.entry_date}: {_money(entry.amount, entry.currency)}")


@credits_group.command("decrement")
@click.option("--customer", "customer_id", required=True)
@click.option("--amount", required=True, callback=_decimal)
@click.option("--currency", required=True)
@click.option("--description", default="")
@ENTRY_DATE
@ACTOR
@DATA_DIR
def credits_decrement(customer_id: str, amount: Decimal, currency: str, description: str,
                      day: date | None, actor: str | None, data_dir: Path) -> None:
    """Take credits off a customer's grants in effect that day, in draw order."""
    settings = _settings(data_dir)
    _entry(settings, customer_id, day, actor, lambda on, who, now: credits.decrement(
        connect(), settings.lake, customer_id, currency, amount, on, description, who, now))


@credits_group.command("amend")
@click.option("--customer", "customer_id", required=True)
@click.option("--grant", "grant_id", required=True)
@click.option("--amount", required=True, callback=_decimal,
              help="Credits given back to the grant (at most what was taken from it).")
@click.option("--description", default="")
@ENTRY_DATE
@ACTOR
@DATA_DIR
def credits_amend(customer_id: str, grant_id: str, amount: Decimal, description: str,
                  day: date | None, actor: str | None, data_dir: Path) -> None:
    """Give credits back to a grant: the reversal of a decrement or a drawdown on it."""
    settings = _settings(data_dir)
    _entry(settings, customer_id, day, actor, lambda on, who, now: [credits.amend(
        connect(), settings.lake, customer_id, grant_id, amount, on, description, who, now)])


@credits_group.command("expire")
@click.option("--customer", "customer_id", required=True)
@click.option("--grant", "grant_id", required=True)
@click.option("--expires", callback=_day, help="YYYY-MM-DD, the new expiry; never, if omitted.")
@click.option("--description", default="")
@ENTRY_DATE
@ACTOR
@DATA_DIR
def credits_expire(customer_id: str, grant_id: str, expires: date | None, description: str,
                   day: date | None, actor: str | None, data_dir: Path) -> None:
    """Change when a grant expires; re-run the months it affects."""
    settings = _settings(data_dir)
    _entry(settings, customer_id, day, actor, lambda on, who, now: [credits.change_expiry(
        settings.lake, customer_id, grant_id, expires, on, description, who, now)])


@credits_group.command("void")
@click.option("--customer", "customer_id", required=True)
@click.option("--grant", "grant_id", required=True)
@click.option("--reason", required=True, help="Why, for the ledger.")
@ENTRY_DATE
@ACTOR
@DATA_DIR
def credits_void(customer_id: str, grant_id: str, reason: str, day: date | None,
                 actor: str | None, data_dir: Path) -> None:
    """Void what is left of a grant from that day on."""
    settings = _settings(data_dir)
    _entry(settings, customer_id, day, actor, lambda on, who, now: [credits.void(
        connect(), settings.lake, customer_id, grant_id, on, reason, who, now)])


@click.command()
@period_option(required=True, multiple=True, help="Billing month, YYYY-MM (repeat for several).")
@click.option("--dry-run", is_flag=True, help="Show the differences; write nothing.")
@DATA_DIR
def rerate(period: tuple[date, ...], dry_run: bool, data_dir: Path) -> None:
    """Recompute past months: per-invoice differences, then (without --dry-run) the run
    that replaces drafts and drafts corrections of issued invoices."""
    settings = _settings(data_dir)
    billed = _billed_months(settings.lake)
    if not billed:
        raise click.ClickException(f"nothing to re-rate: no month is billed in "
                                   f"{settings.data_dir} yet (orb bill --period YYYY-MM)")
    if early := [m for m in period if m < billed[0]]:
        raise click.ClickException(
            f"{early[0]:%Y-%m} is before the first billed month in {settings.data_dir}, "
            f"{billed[0]:%Y-%m}: there is nothing to re-rate")
    # In month order, whatever order they were given in: each starts from the credit
    # balances the month before closed with (assets/billing_order.py).
    for month in sorted(set(period)):
        changes = [d for d in preview(settings, month) if d.difference or d.action.startswith(
            ("new", "draft dropped"))]
        table = Table(title=f"Re-rating {month:%Y-%m}: {len(changes)} invoices change")
        for column in ("customer", "invoice", "before", "after", "difference", "action"):
            table.add_column(column, justify="right" if column in ("before", "after",
                                                                   "difference") else "left")
        for d in changes:
            table.add_row(d.customer_id, d.invoice_id, _money(d.before, d.currency),
                          _money(d.after, d.currency), _money(d.difference, d.currency),
                          d.action)
        console.print(table)
        if not dry_run:
            runner.bill_month(build_definitions(OrbStore.of(settings)), month, runner.instance())
            console.print(f"{month:%Y-%m} re-rated: drafts replaced; corrections are drafts "
                          f"until `orb invoices issue --period {month:%Y-%m}`")


credits_group.add_command(top_up_group)  # orb credits top-up ... (cli/top_ups.py)
