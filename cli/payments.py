"""``orb payments``: refunds and open receivables; ``orb balance``: the customer balance
(docs/payments.md, docs/invoicing.md#customer-balance)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from billing import money, periods
from billing.catalog import CatalogError
from cli.options import DATA_DIR, existing_data_dir
from cli.output import console
from invoicing import balance
from payments.config import PaymentSettings
from payments.processor import PaymentError
from payments.receivables import open_receivables
from payments.received import PaymentRefused
from payments.refunds import refund
from pricing_sql.run_catalog import current_catalog
from storage.settings import Settings
from webhooks.publish import after_lake_write


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise click.BadParameter(f"{text!r} is not a decimal number") from None


@click.group("payments")
def payments() -> None:
    """Refunds and open receivables."""


@payments.command("refund")
@click.argument("number")
@click.argument("amount")
@click.option("--reference", default="",
              help="The manual processor's: the transfer that paid it back.")
@DATA_DIR
def payments_refund(number: str, amount: str, reference: str, data_dir: Path) -> None:
    """Refund AMOUNT of invoice NUMBER through its processor (ORB_PAYMENT_PROCESSOR)."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    config = PaymentSettings.from_env()
    try:
        done = refund(settings.lake, config.build(settings.data_dir), number, _amount(amount),
                      datetime.now(UTC), reference, config.key_prefix)
    except (PaymentRefused, PaymentError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    after_lake_write(settings, datetime.now(UTC))
    console.print(f"{number}: refunded {money.format_money(-done.amount, done.currency)} "
                  f"({done.processor} {done.reference})")


@payments.command("open")
@click.option("--as-of", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="The day to judge past due by; default each customer's today.")
@DATA_DIR
def payments_open(as_of: datetime | None, data_dir: Path) -> None:
    """Open receivables: issued invoices not paid in full, past due or not."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    for r in open_receivables(settings.lake, as_of.date() if as_of else _today(settings)):
        console.print(f"{r.number}  {r.customer_id:<20} due {r.due_date}  "
                      f"{money.format_money(r.amount_due, r.currency):>14} due, "
                      f"{money.format_money(r.remaining, r.currency):>14} open"
                      + ("  past due" if r.past_due else ""))


def _today(settings: Settings) -> Callable[[str], date]:
    """Each customer's today, on their calendar as due dates are (UTC's for a customer
    the store no longer holds)."""
    try:
        zones = {c.id: c.timezone for c in current_catalog(settings).customers}
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from exc
    return periods.local_days(datetime.now(UTC), zones)


@click.group("balance")
def balance_group() -> None:
    """The customer balance: Orb's balance transactions (negative: credit held)."""


@balance_group.command("list")
@click.argument("customer_id")
@DATA_DIR
def balance_list(customer_id: str, data_dir: Path) -> None:
    """A customer's balance transactions, oldest first, with running balances."""
    lake = Settings.from_env(existing_data_dir(data_dir)).lake
    for e in balance.entries(balance.read(lake, customer_id)):
        t = e.transaction
        console.print(f"{t.created_at:%Y-%m-%d %H:%M}  {t.action:<20} "
                      f"{money.format_money(t.amount, t.currency):>14}  balance "
                      f"{money.format_money(e.ending_balance, t.currency):>14}  "
                      f"{t.invoice_number or t.credit_note_number or t.description or ''}")


@balance_group.command("adjust")
@click.argument("customer_id")
@click.argument("amount")
@click.argument("currency")
@click.option("--type", "kind", type=click.Choice(["increment", "decrement"]), required=True,
              help="decrement gives the customer credit (the balance goes down).")
@click.option("--description", default=None)
@DATA_DIR
def balance_adjust(customer_id: str, amount: str, currency: str, kind: str,
                   description: str | None, data_dir: Path) -> None:
    """A manual adjustment of a customer's balance in CURRENCY."""
    lake = Settings.from_env(existing_data_dir(data_dir)).lake
    try:
        entry = balance.adjust(lake, customer_id, currency, _amount(amount),
                               "increment" if kind == "increment" else "decrement",
                               description, datetime.now(UTC))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    t = entry.transaction
    console.print(f"{customer_id}: balance {money.format_money(entry.ending_balance, t.currency)}"
                  f" ({t.transaction_id})")
