"""``orb invoices``, ``orb credits`` and ``orb rerate``: the invoice lifecycle on the CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from assets.resources import OrbStore
from billing import money
from invoicing import credit_grants as credits
from invoicing import documents
from invoicing.document_model import DocumentStatus
from invoicing.issuing import IssueRefused, drafts
from invoicing.rerate import preview
from pipelines import runner
from pipelines.definitions import build_definitions
from pricing_sql.run_catalog import current_catalog
from reports.documents import issue_and_render, render_issued
from storage.billing_runs import MixedBillingRun
from storage.duck import connect
from storage.settings import Settings

console = Console()
DATA_DIR = click.option("--data-dir", default="data", show_default=True,
                        type=click.Path(path_type=Path))


def month_option(_ctx, _param, value):
    """YYYY-MM as the first day of the month (a tuple of them for multiple options)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(month_option(_ctx, _param, v) for v in value)
    try:
        return date.fromisoformat(f"{value}-01")
    except ValueError as exc:
        raise click.BadParameter(f"expected YYYY-MM, got {value!r}") from exc


def _settings(data_dir: Path) -> Settings:
    return Settings.from_env(data_dir)


def _money(amount: Decimal | None, currency: str) -> str:
    return "-" if amount is None else money.format_money(amount, currency)


@click.group()
def invoices() -> None:
    """Drafts, issuing, payment and voiding of invoices and credit notes."""


@invoices.command("list")
@click.option("--period", callback=month_option, help="Billing month, YYYY-MM.")
@click.option("--customer", "customer_id")
@DATA_DIR
def invoices_list(period: date | None, customer_id: str | None, data_dir: Path) -> None:
    """Issued documents with their status; with --period, that month's drafts too."""
    lake, con = _settings(data_dir).lake, connect()
    table = Table(title="Invoices and credit notes")
    for column in ("number", "type", "invoice", "customer", "date", "due", "total", "status"):
        table.add_column(column, justify="right" if column == "total" else "left")
    status = documents.statuses(con, lake)
    for issued in documents.issued_documents(lake):
        if (period is None or issued.billing_month == period) and (
                customer_id is None or issued.customer_id == customer_id):
            table.add_row(issued.number, issued.document_type, issued.invoice_id,
                          issued.customer_id, str(issued.invoice_date), str(issued.due_date),
                          _money(issued.total, issued.currency), status[issued.number])
    if period is not None:
        try:
            month_drafts = drafts(con, lake, period)
        except MixedBillingRun as exc:
            raise click.ClickException(str(exc)) from exc
        for draft in month_drafts:
            head = draft.head
            if customer_id is None or head.customer_id == customer_id:
                table.add_row("-", head.document_type, head.reference, head.customer_id,
                              str(head.invoice_date), str(head.due_date),
                              _money(head.total, head.currency), "draft")
    console.print(table)


@invoices.command("issue")
@click.option("--period", required=True, callback=month_option, help="Billing month, YYYY-MM.")
@click.option("--customer", "customers", multiple=True, help="Only these customers.")
@DATA_DIR
def invoices_issue(period: date, customers: tuple[str, ...], data_dir: Path) -> None:
    """Number and freeze the month's drafts; write each as HTML and PDF."""
    try:
        issued, folder = issue_and_render(_settings(data_dir), period, set(customers) or None)
    except (MixedBillingRun, IssueRefused) as exc:
        raise click.ClickException(str(exc)) from exc
    for number, draft in issued:
        head = draft.head
        console.print(f"{number}  {head.document_type:<18} {head.reference:<28} "
                      f"{_money(head.total, head.currency)}")
    console.print(f"Issued {len(issued)} documents; HTML and PDF in {folder}")


@invoices.command("render")
@click.option("--period", callback=month_option, help="Billing month, YYYY-MM (default: all).")
@DATA_DIR
def invoices_render(period: date | None, data_dir: Path) -> None:
    """Write the HTML and PDF of issued documents whose files are missing."""
    settings = _settings(data_dir)
    folder, count = render_issued(settings.lake, current_catalog(settings), settings.issuer,
                                  period)
    console.print(f"Rendered {count} documents into {folder}")


def _set_status(number: str, status: DocumentStatus, note: str, data_dir: Path) -> None:
    try:
        documents.change_status(_settings(data_dir).lake, number, status,
                                datetime.now(UTC), note)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
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
@DATA_DIR
def credits_ledger(customer_id: str, data_dir: Path) -> None:
    """A customer's grants, drawdowns and expiries, with each grant's running balance."""
    table = Table(title=f"Credit ledger of {customer_id}")
    for column in ("date", "entry", "grant", "invoice", "amount", "grant balance"):
        table.add_column(column, justify="right" if column in ("amount", "grant balance")
                         else "left")
    for row in credits.ledger_view(connect(), _settings(data_dir).lake, customer_id):
        table.add_row(str(row["entry_date"]), row["entry_type"], row["grant_id"],
                      row["invoice_id"] or "", _money(row["amount"], row["currency"]),
                      _money(row["grant_balance"], row["currency"]))
    console.print(table)


@click.command()
@click.option("--period", "months", required=True, multiple=True, callback=month_option,
              help="Billing month, YYYY-MM (repeat for several).")
@click.option("--dry-run", is_flag=True, help="Show the differences; write nothing.")
@DATA_DIR
def rerate(months: tuple[date, ...], dry_run: bool, data_dir: Path) -> None:
    """Recompute past months: per-invoice differences, then (without --dry-run) the run
    that replaces drafts and drafts corrections of issued invoices."""
    settings = _settings(data_dir)
    for month in months:
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
