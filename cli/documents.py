"""Documents made by hand on the CLI: ``orb credit-notes create``, and ``orb invoices
create|issue-one-off|auto-issue`` (added to ``orb invoices`` by ``cli/billing.py``).
Each calls the stage function the API calls (docs/invoicing.md#documents-made-by-hand)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from billing.catalog import CatalogError, Customer
from cli.options import DATA_DIR, existing_data_dir
from cli.output import console
from invoicing import credit_notes, invoice_metadata, one_off
from invoicing.auto_issue import auto_issue
from pricing_sql.run_catalog import current_catalog
from reports.documents import render_months
from storage.duck import connect
from storage.settings import Settings
from webhooks.publish import after_lake_write


def _settings(data_dir: Path) -> Settings:
    return Settings.from_env(existing_data_dir(data_dir))


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{what}: expected a decimal number, got {text!r}") from exc
    if not value.is_finite():
        raise click.BadParameter(f"{what}: expected a decimal number, got {text!r}")
    return value


def _issued(settings: Settings, months: set[date], at: datetime) -> None:
    """After documents were issued: their webhook events and their HTML and PDF."""
    after_lake_write(settings, at)
    render_months(settings, months)


@click.group("credit-notes")
def credit_notes_group() -> None:
    """Credit notes made by hand on issued invoices."""


@credit_notes_group.command("create")
@click.argument("invoice")
@click.option("--line", "lines", multiple=True,
              help="A line of the invoice to credit (its line id); repeat with --amount.")
@click.option("--amount", "amounts", multiple=True, required=True,
              help="What to credit: one per --line, or one alone for the whole invoice.")
@click.option("--reason", required=True, type=click.Choice(credit_notes.REASONS))
@click.option("--memo", default=None)
@DATA_DIR
def credit_notes_create(invoice: str, lines: tuple[str, ...], amounts: tuple[str, ...],
                        reason: str, memo: str | None, data_dir: Path) -> None:
    """Issue a credit note on INVOICE (a number): per line, at most what the line still
    bills; or by amount, at most what the invoice still bills."""
    if lines and len(lines) != len(amounts) or not lines and len(amounts) != 1:
        raise click.UsageError("give one --amount per --line, or a single --amount "
                               "without --line for the invoice as a whole")
    keys: list[str | None] = list(lines) if lines else [credit_notes.WHOLE]
    credits = [credit_notes.CreditLine(key, _decimal(text, f"--amount {text}"))
               for key, text in zip(keys, amounts, strict=True)]
    settings = _settings(data_dir)
    at = datetime.now(UTC)
    try:
        number, draft = credit_notes.issue_credit_note(settings.lake, invoice, credits,
                                                       reason, memo, at)
    except credit_notes.CreditNoteRefused as exc:
        raise click.ClickException(f"credit note refused: {exc}") from exc
    _issued(settings, {draft.head.billing_month}, at)
    console.print(f"{number}  credits {invoice}  {-draft.head.total} {draft.head.currency}"
                  f"  ({reason})")


def _one_off_line(text: str, start: date, end: date) -> one_off.OneOffLine:
    name, _, rest = text.rpartition(",")
    name, _, quantity = name.rpartition(",")
    if not name:
        raise click.BadParameter(f"--line {text!r}: expected NAME,QUANTITY,UNIT_AMOUNT")
    return one_off.OneOffLine(name, _decimal(quantity, f"--line {text!r} quantity"),
                              _decimal(rest, f"--line {text!r} unit amount"), start, end)


@click.command("create")
@click.option("--customer", "customer_id", required=True)
@click.option("--currency", required=True)
@click.option("--date", "invoice_date", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="The invoice date, YYYY-MM-DD, the customer's.")
@click.option("--line", "lines", multiple=True, required=True,
              help="NAME,QUANTITY,UNIT_AMOUNT, e.g. 'Onboarding,3,12.50'; repeat.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="Service start (default: --date).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]),
              help="Service end, inclusive (default: --start).")
@click.option("--net-terms", type=int, help="Days to pay (default: the customer's).")
@click.option("--memo", default=None)
@click.option("--metadata", "metadata", multiple=True, help="KEY=VALUE, printed as a custom "
              "field when issued, e.g. 'PO number=PO-1234'; repeat.")
@click.option("--issue", "will_auto_issue", is_flag=True, help="Issue it at once.")
@DATA_DIR
def invoices_create(customer_id: str, currency: str, invoice_date: datetime,
                    lines: tuple[str, ...], start: datetime | None, end: datetime | None,
                    net_terms: int | None, memo: str | None, metadata: tuple[str, ...],
                    will_auto_issue: bool, data_dir: Path) -> None:
    """A one-off invoice (Orb's POST /invoices): a draft, or issued at once with --issue."""
    settings = _settings(data_dir)
    customer = known_customer(settings, customer_id)
    pairs = [item.partition("=") for item in metadata]
    if any(not sep or not key for key, sep, _ in pairs):
        raise click.BadParameter("--metadata: expected KEY=VALUE")
    first = (start or invoice_date).date()
    at = datetime.now(UTC)
    try:
        invoice_id, number = one_off.create(
            settings.lake, customer.id, currency, invoice_date.date(),
            [_one_off_line(text, first, (end.date() if end else first)) for text in lines],
            customer.net_terms if net_terms is None else net_terms, at, memo,
            {key: value for key, _, value in pairs} or None, will_auto_issue,
            timezone=customer.timezone)
    except (one_off.OneOffRefused, invoice_metadata.MetadataRefused) as exc:
        raise click.ClickException(f"one-off invoice refused: {exc}") from exc
    if number:
        _issued(settings, {invoice_date.date().replace(day=1)}, at)
    console.print(f"{invoice_id}" + (f" issued as {number}" if number else " (draft)"))


@click.command("issue-one-off")
@click.argument("invoice_id")
@DATA_DIR
def invoices_issue_one_off(invoice_id: str, data_dir: Path) -> None:
    """Issue a one-off draft (its id, oneoff_...): numbered, HTML and PDF."""
    settings = _settings(data_dir)
    at = datetime.now(UTC)
    found = one_off.read(settings.lake).get(invoice_id)
    if found is None:
        raise click.ClickException(f"no one-off invoice {invoice_id!r}")
    head = found.draft.head
    try:
        number = one_off.issue(settings.lake, invoice_id, at,
                               known_customer(settings, head.customer_id).timezone)
    except one_off.OneOffRefused as exc:
        raise click.ClickException(str(exc)) from exc
    _issued(settings, {head.billing_month}, at)
    console.print(f"{invoice_id} issued as {number}")


@click.command("auto-issue")
@click.option("--grace-days", type=click.IntRange(min=0),
              help="Default: ORB_AUTO_ISSUE_GRACE_DAYS (unset: nothing is issued).")
@DATA_DIR
def invoices_auto_issue(grace_days: int | None, data_dir: Path) -> None:
    """Issue the draft invoices dated at least the grace period ago, as the daily
    auto_issue_drafts schedule does."""
    settings = _settings(data_dir)
    grace = settings.auto_issue_grace_days if grace_days is None else grace_days
    if grace is None:
        console.print("Auto-issue is off: set ORB_AUTO_ISSUE_GRACE_DAYS or --grace-days")
        return
    at = datetime.now(UTC)
    done = auto_issue(connect(), settings.lake, grace, at)
    for month, why in done.skipped.items():
        console.print(f"{month:%Y-%m} skipped: {why}")
    if done.issued:
        _issued(settings, {draft.head.billing_month for _, draft in done.issued}, at)
    for number, draft in done.issued:
        console.print(f"{number}  {draft.head.reference}  {draft.head.total} "
                      f"{draft.head.currency}")
    console.print(f"Auto-issued {len(done.issued)} drafts dated {grace} days or more ago")


def known_customer(settings: Settings, customer_id: str) -> Customer:
    """The customer as the state store holds it now."""
    try:
        return current_catalog(settings).customer(customer_id)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from exc
    except KeyError:
        raise click.ClickException(
            f"unknown customer {customer_id!r} in {settings.data_dir}") from None
