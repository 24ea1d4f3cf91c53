"""``orb alerts``: Orb's alerts on the CLI (docs/webhooks.md#alerts), written through
``state.alerts`` as the API writes them; ``orb alerts evaluate`` runs an evaluation by
hand (the ingestion job and the daily refresh run it themselves)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click

from cli.options import DATA_DIR, FORMAT, default_actor, existing_data_dir
from cli.output import emit
from cli.state import ACTOR, catalog_references, state_store
from pricing_sql.run_catalog import current_catalog
from state import alerts as stored
from storage.settings import Settings
from webhooks.alert_shapes import alert_shape
from webhooks.alerts import evaluate, in_alert_of

# the state store's field: the option that gave it
OPTIONS = {"type": "--type", "customer_id": "--customer", "subscription_id": "--subscription",
           "metric_id": "--metric", "currency": "--currency", "thresholds": "--threshold"}
THRESHOLD = click.option("--threshold", "thresholds", multiple=True,
                         help="A threshold (a decimal, zero or more); repeat for several.")


def _where(field: str) -> str:
    """``thresholds.1.value`` as ``--threshold #2``."""
    head, _, rest = field.partition(".")
    index = rest.split(".")[0]
    return OPTIONS.get(head, head) + (f" #{int(index) + 1}" if index.isdigit() else "")


@click.group("alerts")
def alerts() -> None:
    """Usage, cost and credit-balance alerts: thresholds that fire outbox events."""


@alerts.command("create")
@click.option("--type", "alert_type", required=True,
              type=click.Choice(stored.SUBSCRIPTION_TYPES + stored.CUSTOMER_TYPES))
@click.option("--customer", help="The customer (credit-balance alerts).")
@click.option("--external-customer", help="The customer, by its external id.")
@click.option("--subscription", help="The subscription (usage and cost alerts).")
@click.option("--metric", help="The metric a usage_exceeded alert watches.")
@click.option("--currency", help="The balance's currency (credit-balance alerts), or the "
              "invoices' a cost alert counts.")
@THRESHOLD
@ACTOR
@DATA_DIR
def create(alert_type: str, customer: str | None, external_customer: str | None,
           subscription: str | None, metric: str | None, currency: str | None,
           thresholds: Sequence[str], actor: str | None, data_dir: Path) -> None:
    """Create an alert, enabled; prints its id."""
    existing_data_dir(data_dir)
    if external_customer is not None:
        found = next((c for c in current_catalog(Settings.from_env(data_dir)).customers
                      if c.external_customer_id == external_customer), None)
        if found is None:
            raise click.ClickException(f"--external-customer: no customer has external id "
                                       f"{external_customer!r}")
        customer = found.id
    metrics = {m.id for m in catalog_references(data_dir).metrics}
    with state_store(data_dir) as store:
        alert = stored.create(store.engine, stored.NewAlert(
            f"alert_{secrets.token_hex(8)}", alert_type, customer, subscription, metric,
            currency), thresholds, metrics, actor or default_actor(), datetime.now(UTC),
            _where)
    click.echo(alert.alert_id)


def _records(data_dir: Path, chosen: list[stored.Alert]) -> list[dict]:
    status = in_alert_of(Settings.from_env(data_dir), chosen)
    return [{"alert_id": a.alert_id, "type": a.type, "customer_id": a.customer_id,
             "subscription_id": a.subscription_id, "metric_id": a.metric_id,
             "currency": a.currency, "enabled": a.enabled,
             "thresholds": ", ".join(stored.threshold_text(t) for t in a.thresholds),
             "in_alert": ", ".join(stored.threshold_text(t) for t, on in
                                   status.get(a.alert_id, {}).items() if on),
             "created_at": a.created_at} for a in chosen]


FIELDS = ("alert_id", "type", "customer_id", "subscription_id", "metric_id", "currency",
          "enabled", "thresholds", "in_alert", "created_at")


@alerts.command("list")
@click.option("--customer", help="Only this customer's alerts.")
@click.option("--subscription", help="Only this subscription's alerts.")
@FORMAT
@DATA_DIR
def list_alerts(customer: str | None, subscription: str | None, output_format: str,
                data_dir: Path) -> None:
    """The alerts, oldest first, as their newest version gives them."""
    existing_data_dir(data_dir)
    with state_store(data_dir) as store:
        found = stored.read(store.engine, customer_ids=[customer] if customer else None)
    chosen = [a for a in found if subscription is None or a.subscription_id == subscription]
    emit(output_format, "Alerts", FIELDS, _records(data_dir, chosen),
         ["alert", "type", "customer", "subscription", "metric", "currency", "enabled",
          "thresholds", "in alert"],
         lambda r: [r["alert_id"], r["type"], r["customer_id"], r["subscription_id"] or "",
                    r["metric_id"] or "", r["currency"] or "", "yes" if r["enabled"] else "no",
                    r["thresholds"], r["in_alert"]])


def _one(data_dir: Path, alert_id: str) -> stored.Alert:
    with state_store(data_dir) as store:
        found = stored.read(store.engine, [alert_id])
    if not found:
        raise click.ClickException(f"no alert {alert_id!r}")
    return found[0]


@alerts.command("show")
@click.argument("alert_id")
@DATA_DIR
def show(alert_id: str, data_dir: Path) -> None:
    """One alert in Orb's shape (JSON), as the API answers it."""
    existing_data_dir(data_dir)
    alert = _one(data_dir, alert_id)
    customer = next((c for c in current_catalog(Settings.from_env(data_dir)).customers
                     if c.id == alert.customer_id), None)
    status = in_alert_of(Settings.from_env(data_dir), [alert]).get(alert_id, {})
    click.echo(json.dumps(alert_shape(alert, customer.external_customer_id if customer
                                      else None, status), indent=2))


def _change(data_dir: Path, alert_id: str, actor: str | None, enabled: bool | None = None,
            thresholds: Sequence[str] | None = None) -> stored.Alert:
    existing_data_dir(data_dir)
    _one(data_dir, alert_id)
    with state_store(data_dir) as store:
        return stored.change(store.engine, alert_id, actor or default_actor(),
                             datetime.now(UTC), enabled, thresholds, _where)


@alerts.command("enable")
@click.argument("alert_id")
@ACTOR
@DATA_DIR
def enable(alert_id: str, actor: str | None, data_dir: Path) -> None:
    """Enable an alert: it is evaluated again."""
    _change(data_dir, alert_id, actor, enabled=True)
    click.echo(f"{alert_id} enabled")


@alerts.command("disable")
@click.argument("alert_id")
@ACTOR
@DATA_DIR
def disable(alert_id: str, actor: str | None, data_dir: Path) -> None:
    """Disable an alert: it is not evaluated until enabled."""
    _change(data_dir, alert_id, actor, enabled=False)
    click.echo(f"{alert_id} disabled")


@alerts.command("update")
@click.argument("alert_id")
@THRESHOLD
@ACTOR
@DATA_DIR
def update(alert_id: str, thresholds: Sequence[str], actor: str | None,
           data_dir: Path) -> None:
    """Replace an alert's thresholds."""
    alert = _change(data_dir, alert_id, actor, thresholds=list(thresholds))
    click.echo(f"{alert_id}: thresholds "
               f"{', '.join(stored.threshold_text(t) for t in alert.thresholds) or 'none'}")


@alerts.command("evaluate")
@click.option("--customer", "customers", multiple=True,
              help="Only this customer's alerts; repeat for several [default: every one].")
@DATA_DIR
def evaluate_command(customers: Sequence[str], data_dir: Path) -> None:
    """Evaluate the enabled alerts now and append what fires to the outbox."""
    existing_data_dir(data_dir)
    done = evaluate(Settings.from_env(data_dir), datetime.now(UTC), list(customers) or None)
    click.echo(f"{done.alerts} alerts evaluated, {done.events} events appended")
    for customer, why in done.failures.items():
        click.echo(f"customer {customer}: not evaluated: {why}", err=True)
    if done.failures:
        raise SystemExit(1)
