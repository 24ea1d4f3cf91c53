"""The ``orb`` command line: a group that imports a command's module only when that
command runs. Each command's short help is kept here, so ``orb --help`` and
``orb --version`` import click alone, not Dagster, DuckDB, ReportLab or matplotlib
(``bench/cli_startup.py`` times them)."""

from __future__ import annotations

import importlib

import click

DISTRIBUTION = "orb-on-duckdb"

# name -> ("module:attribute", short help): a one-line summary of its docstring.
COMMANDS: dict[str, tuple[str, str]] = {
    "alerts": ("cli.alerts:alerts",
               "Usage, cost and credit-balance alerts: thresholds that fire outbox events."),
    "amend": ("cli.commands:amend",
              "Deprecate past events and optionally ingest replacements."),
    "audit": ("cli.serve:audit", "The API's audit trail, newest last."),
    "balance": ("cli.payments:balance_group",
                "The customer balance: Orb's balance transactions (negative: credit held)."),
    "bill": ("cli.commands:bill", "Land events and bill one month."),
    "credit-notes": ("cli.documents:credit_notes_group",
                     "Credit notes made by hand on issued invoices."),
    "credits": ("cli.billing:credits_group", "Prepaid credit grants and the credit ledger."),
    "catalog": ("cli.catalog:catalog", "Import and check catalogs as code."),
    "customers": ("cli.state:customers", "Customers in the state store."),
    "demo": ("cli.commands:demo", "Generate sample data, bill and issue it."),
    "dunning": ("cli.dunning:dunning",
                "Reminders and past-due notices by mail, each with a payment retry."),
    "export": ("cli.export:export", "Export the published lake tables to a folder or S3."),
    "ingest": ("cli.commands:ingest", "Ingest event files as batches."),
    "invoices": ("cli.billing:invoices",
                 "Drafts, issuing, payment and voiding of invoices and credit notes."),
    "keys": ("cli.serve:keys", "API keys: each has a role and belongs to one tenant."),
    "metrics": ("cli.commands:metrics", "Billable metrics."),
    "payments": ("cli.payments:payments", "Refunds and open receivables."),
    "price": ("cli.commands:price", "Price one usage quantity and show the breakdown."),
    "quarantine": ("cli.commands:quarantine",
                   "Events that failed a check, kept with the reason and their place."),
    "rerate": ("cli.billing:rerate", "Recompute past months and draft corrections."),
    "serve": ("cli.serve:serve", "Serve the Orb-compatible API under /v1."),
    "state": ("cli.state:state_group", "The state store as a whole."),
    "subscriptions": ("cli.state:subscriptions", "Subscriptions in the state store."),
    "tenants": ("cli.serve:tenants", "Tenants: each its own deployment."),
    "webhooks": ("cli.webhooks:webhooks",
                 "Webhook endpoints, delivery of the outbox's events, replays."),
}


class LazyGroup(click.Group):
    """Lists ``COMMANDS`` from their static help and imports one only to run it."""

    listing = False  # while the group's own help is formatted

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, short_help = COMMANDS[cmd_name]
        if self.listing:  # `orb --help` needs the name and short help only
            return click.Command(cmd_name, short_help=short_help)
        module, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.listing = False


@click.group(cls=LazyGroup)
@click.version_option(package_name=DISTRIBUTION, prog_name="orb")
def main() -> None:
    """Orb: usage-based billing on DuckDB, Parquet and Dagster."""


if __name__ == "__main__":
    main()
