"""``orb credits top-up create|list|delete|evaluate``: credit top-ups (docs/api.md#top-ups)
through the same functions the API calls (``invoicing.top_ups``, ``state.top_ups``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from cli.options import DATA_DIR, FORMAT, existing_data_dir
from cli.output import emit
from invoicing import top_ups
from state import StateError, StateStore
from state import top_ups as stored
from state.top_ups import TopUp
from storage.settings import Settings

ACTOR = "cli"
FIELDS = ("id", "customer_id", "currency", "amount", "threshold", "per_unit_cost_basis",
          "expires_after", "expires_after_unit")


def _decimal(_ctx: click.Context, param: click.Parameter, value: str) -> Decimal:
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"expected a decimal number, got {value!r}") from exc


@click.group("top-up")
def top_up_group() -> None:
    """Credit top-ups: credits granted and billed when a balance falls to a threshold."""


@top_up_group.command("create")
@click.option("--customer", "customer_id", required=True)
@click.option("--currency", required=True)
@click.option("--amount", required=True, callback=_decimal, help="Credits granted each time.")
@click.option("--threshold", required=True, callback=_decimal,
              help="Fires when the balance is at or below it.")
@click.option("--cost-basis", required=True, callback=_decimal,
              help="Charged per credit, in the currency.")
@click.option("--net-terms", default=0, show_default=True, type=int)
@click.option("--memo")
@click.option("--expires-after", type=int)
@click.option("--expires-after-unit", type=click.Choice(stored.UNITS))
@DATA_DIR
def create(customer_id: str, currency: str, amount: Decimal, threshold: Decimal,
           cost_basis: Decimal, net_terms: int, memo: str | None, expires_after: int | None,
           expires_after_unit: str | None, data_dir: Path) -> None:
    """Create a top-up (replacing the customer's one in that currency), then evaluate it."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    now = datetime.now(UTC)
    new = TopUp(f"top_up_{secrets.token_hex(8)}", customer_id, currency, amount, threshold,
                cost_basis, {"auto_collection": False, "net_terms": net_terms, "memo": memo,
                             "require_successful_payment": None},
                now, expires_after, expires_after_unit, now)
    try:
        replaced = top_ups.create(settings, new, ACTOR)
    except StateError as exc:
        raise click.ClickException("; ".join(
            p.replace("body.per_unit_cost_basis", "--cost-basis").replace("body.", "--")
            for p in exc.problems)) from exc
    click.echo(f"{new.top_up_id}" + (f" (replaces {replaced})" if replaced else ""))
    done = top_ups.evaluate(settings, now, [customer_id])
    if done.fired:
        click.echo("balance at or below the threshold: fired")


@top_up_group.command("list")
@click.option("--customer", "customer_id")
@FORMAT
@DATA_DIR
def list_command(customer_id: str | None, output_format: str, data_dir: Path) -> None:
    """The active top-ups, newest first."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    with StateStore.open(settings.state_store_url) as store:
        found = stored.active(store.engine, [customer_id] if customer_id else None)
    records = [t.as_orb() | {"customer_id": t.customer_id} for t in found]
    emit(output_format, "Credit top-ups", FIELDS, records, FIELDS,
         lambda r: ["" if r[f] is None else str(r[f]) for f in FIELDS])


@top_up_group.command("delete")
@click.argument("top_up_id")
@click.option("--customer", "customer_id", required=True)
@DATA_DIR
def delete(top_up_id: str, customer_id: str, data_dir: Path) -> None:
    """End a top-up (its grants and purchase invoices stay)."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    with StateStore.open(settings.state_store_url) as store:
        if not stored.end(store.engine, customer_id, top_up_id, ACTOR, datetime.now(UTC)):
            raise click.ClickException(f"customer {customer_id!r} has no active top-up "
                                       f"{top_up_id!r}")
    click.echo(f"{top_up_id} deleted")


@top_up_group.command("evaluate")
@click.option("--customer", "customers", multiple=True,
              help="Only this customer's; repeat for several [default: every one].")
@DATA_DIR
def evaluate(customers: tuple[str, ...], data_dir: Path) -> None:
    """Evaluate the active top-ups now: grant and bill those at or below their threshold."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    done = top_ups.evaluate(settings, datetime.now(UTC), list(customers) or None)
    click.echo(f"{done.fired} fired, {done.rearmed} re-armed")
