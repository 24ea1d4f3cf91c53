"""``orb dunning``: one dunning run (reminders and past-due notices by mail) and the
notices sent (docs/payments.md#dunning)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from billing import money
from billing.catalog import CatalogError
from cli.options import DATA_DIR, FORMAT, existing_data_dir, iso_instant
from cli.output import console, emit
from payments import notice_records
from payments.config import PaymentSettings
from payments.dunning import run_dunning
from payments.dunning_schedule import steps_from_env
from payments.smtp import SmtpSettings
from pricing_sql.run_catalog import current_catalog
from reports.documents import seller_of
from reports.notices import render_notice
from storage.settings import Settings
from webhooks.publish import after_lake_write


@click.group("dunning")
def dunning() -> None:
    """Reminders and past-due notices by mail, each with a payment retry."""


@dunning.command("run")
@click.option("--as-of", callback=iso_instant,
              help="Run as at this ISO 8601 instant (with its offset); default now.")
@DATA_DIR
def dunning_run(as_of: datetime | None, data_dir: Path) -> None:
    """Send the notices now due (ORB_SMTP_*, ORB_DUNNING_STEPS); each at most once."""
    settings = Settings.from_env(existing_data_dir(data_dir))
    payment = PaymentSettings.from_env()
    try:
        catalog = current_catalog(settings)
        summary = run_dunning(settings.lake, as_of or datetime.now(UTC), catalog,
                              seller_of(catalog, settings.issuer), SmtpSettings.from_env(),
                              render_notice, processor=payment.processor,
                              steps=steps_from_env(), key_prefix=payment.key_prefix)
    except (CatalogError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    after_lake_write(settings, datetime.now(UTC))  # invoice.dunning_schedule_step_executed
    for number, step in summary.sent:
        retry = summary.retries.get(number)
        console.print(f"{number}: {step} sent"
                      + (f", payment retry at {retry:%Y-%m-%d %H:%M} UTC" if retry else "")
                      + (f" (missed: {', '.join(summary.missed[number])})"
                         if number in summary.missed else ""))
    for number, step in summary.resent:
        console.print(f"{number}: {step} sent again (its first sending was not confirmed)")
    for number in summary.no_recipient:
        console.print(f"{number}: no notice, its customer has no email address")
    if summary.errors:
        raise click.ClickException("not sent (the next run sends them):\n" + "\n".join(
            f"{n}: {e}" for n, e in summary.errors.items()))
    if not (summary.sent or summary.resent):
        console.print("no notice due")


NOTICE_FIELDS = ("number", "step", "kind", "recipient", "remaining", "currency", "due_date",
                 "retry_at", "state", "sent_at", "message_id")


@dunning.command("list")
@FORMAT
@DATA_DIR
def dunning_list(output_format: str, data_dir: Path) -> None:
    """The notices, per invoice in step order: sent, or unconfirmed (sent again next run)."""
    lake = Settings.from_env(existing_data_dir(data_dir)).lake
    rows = notice_records.listing(lake)
    for row in rows:
        row["remaining"] = money.quantize(row["remaining"], row["currency"])
    emit(output_format, "Dunning notices", NOTICE_FIELDS, rows,
         ("Invoice", "Step", "Recipient", "Remaining", "Due", "Retry at", "State", "Sent at"),
         lambda r: (r["number"], r["step"], r["recipient"],
                    money.format_money(r["remaining"], r["currency"]),
                    r["due_date"].isoformat(),
                    f"{r['retry_at']:%Y-%m-%d %H:%M}" if r["retry_at"] else "-", r["state"],
                    f"{r['sent_at']:%Y-%m-%d %H:%M}" if r["sent_at"] else "-"),
         right=("Remaining",))
