"""Every lake table, declared once: its Arrow schema, its partition key and whether it is
published. The writers, the DuckDB views (``views.py``), the exports and their DDL
(``exports/``) and the checks read it from here, and ``tests/test_exports.py`` fails on a
table the lake holds that is not declared here.

``lake/<table>/<partition_key>=<value>/<file>.parquet`` (docs/lake.md): one file per
partition, except ``events`` (one per batch and day) and ``document_events`` (an issuing
run's 'issued' events, then one file per status change). A schema is that of the Parquet
files; a partition key that is not one of its columns exists only in the path
(``usage``'s ``billing_month``, ``events``' ``event_date``, the ``issue_run`` of issued
documents). Column meanings: docs/lake.md, docs/revenue.md, docs/payments.md.

The month tables a billing run writes (``storage/billing_runs.py``) are declared with the
schema its stage computes plus ``run_id``, the run that wrote them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

INSTANT = pa.timestamp("us", tz="UTC")
AMOUNT = pa.decimal128(38, 4)  # money, rounded to the currency or finer
QUANTITY = pa.decimal128(38, 9)


@dataclass(frozen=True)
class Table:
    name: str
    schema: pa.Schema | None  # None: not Parquet (``keys``), or columns that vary
    partition_key: str | None  # the hive folder ``<key>=<value>``; None: not hive-partitioned
    published: bool  # a DuckDB view and exported; otherwise internal
    description: str = ""

    @property
    def key(self) -> str:
        """The partition key, for the writers and readers of a partitioned table."""
        if self.partition_key is None:
            raise ValueError(f"lake table {self.name!r} is not hive-partitioned")
        return self.partition_key


# -- ingestion -------------------------------------------------------------------------

EVENTS = pa.schema([
    ("timestamp", INSTANT),
    ("event_name", pa.string()),
    ("customer_id", pa.string()),
    ("idempotency_key", pa.string()),
    ("properties", pa.string()),
    ("batch_id", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("late", pa.bool_()),
])
QUARANTINE = pa.schema([
    ("batch_id", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("reject_reason", pa.string()),
    ("reject_detail", pa.string()),
    ("event_date", pa.date32()),
    ("idempotency_key", pa.string()),
    ("event_name", pa.string()),
    ("raw_timestamp", pa.string()),
    ("raw_customer_id", pa.string()),
    ("raw_external_customer_id", pa.string()),
    ("raw_properties", pa.string()),
])
# Written from a row whose types pyarrow infers: a batch without clean events has no
# first or last day, and those two columns are then of Arrow's null type in its file.
BATCHES = pa.schema([
    ("batch_id", pa.string()),
    ("file", pa.string()),
    ("status", pa.string()),
    ("committed_at", INSTANT),
    ("checked_at", INSTANT),
    ("rows", pa.int64()),
    ("accepted", pa.int64()),
    ("rejected", pa.int64()),
    ("duplicates", pa.int64()),
    ("late", pa.int64()),
    ("first_day", pa.date32()),
    ("last_day", pa.date32()),
])
# What active_events.sql reads of the batch records: which batches count, since when.
BATCH_COMMITS = pa.schema([BATCHES.field("batch_id"), BATCHES.field("committed_at")])
AMENDMENTS = pa.schema([
    ("amendment_id", pa.string()),
    ("created_at", INSTANT),
    ("customer_id", pa.string()),
    ("timeframe_start", INSTANT),
    ("timeframe_end", INSTANT),
    ("idempotency_key", pa.string()),
    ("reason", pa.string()),
])
# An Orb backfill (ingestion/backfills.py), rewritten whole on close and on revert. It is
# reflected once close_time has passed, until reverted_at: its batches' events count only
# then, as if committed at close_time, and with replace_existing_events it deprecates
# its timeframe's events committed before close_time, as an amendment made then would.
BACKFILLS = pa.schema([
    ("backfill_id", pa.string()),
    ("created_at", INSTANT),
    ("customer_id", pa.string()),  # null: every customer
    ("timeframe_start", INSTANT),
    ("timeframe_end", INSTANT),
    ("replace_existing_events", pa.bool_()),
    ("close_time", INSTANT),  # when it closes (future) or closed (past)
    ("reverted_at", INSTANT),
    # Orb's deprecation_filter: which events of the timeframe it replaces (null: all)
    ("deprecation_filter", pa.string()),
])
# Which backfill a batch was ingested into, written before the batch commits.
BACKFILL_BATCHES = pa.schema([("batch_id", pa.string()), ("backfill_id", pa.string())])

# -- rating ----------------------------------------------------------------------------

USAGE = pa.schema([
    ("window_id", pa.string()),
    ("metric_id", pa.string()),
    ("grouping", pa.list_(pa.string())),
    ("group_values", pa.list_(pa.string())),
    ("quantity", QUANTITY),
])
LINE_ITEMS = pa.schema([
    ("invoice_id", pa.string()),
    ("invoice_date", pa.date32()),
    ("line_item_id", pa.string()),
    ("window_id", pa.string()),
    ("billing_month", pa.date32()),
    ("customer_id", pa.string()),
    ("subscription_id", pa.string()),
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("price_id", pa.string()),
    ("name", pa.string()),
    ("model_type", pa.string()),
    ("billable_metric_id", pa.string()),
    ("currency", pa.string()),
    ("currency_exponent", pa.int32()),
    ("in_advance", pa.bool_()),
    ("service_start", pa.date32()),
    ("service_end", pa.date32()),
    ("quantity", QUANTITY),
    ("precise_amount", pa.decimal128(38, 21)),
    ("prorated_days", pa.int32()),
    ("period_days", pa.int32()),
    ("amount", AMOUNT),
    # the price's invoice_grouping_key: its lines are one section of the invoice (null: none)
    ("invoice_grouping_key", pa.string()),
])
SUB_LINE_ITEMS = pa.schema([
    ("invoice_id", pa.string()),
    ("line_item_id", pa.string()),
    ("group_values", pa.list_(pa.string())),
    ("tier_index", pa.int32()),
    ("first_unit", QUANTITY),
    ("last_unit", QUANTITY),
    ("quantity", QUANTITY),
    ("unit_amount", pa.decimal128(38, 12)),
    ("amount", pa.decimal128(38, 21)),
])
# Customers a billing run left out because rating them raised (pricing_sql/isolation.py).
RATING_EXCLUSIONS = pa.schema([
    ("customer_id", pa.string()),
    ("step", pa.string()),  # "usage" (a metric) or "line_items" (pricing)
    ("error", pa.string()),
    ("idempotency_keys", pa.list_(pa.string())),  # the events found to cause it
])

# -- invoicing -------------------------------------------------------------------------

INVOICES = pa.schema([
    ("invoice_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("currency_exponent", pa.int32()),
    ("billing_month", pa.date32()),
    ("invoice_date", pa.date32()),
    ("due_date", pa.date32()),
    ("service_start", pa.date32()),
    ("service_end", pa.date32()),
    ("line_count", pa.int64()),
    ("subtotal", AMOUNT),
    ("adjustments", AMOUNT),
    ("credits_applied", AMOUNT),
    ("tax", AMOUNT),  # added to the total: exclusive tax (inclusive tax is in the lines)
    ("total", AMOUNT),
    ("amount_due", AMOUNT),
    ("status", pa.string()),
])
INVOICE_ADJUSTMENTS = pa.schema([
    ("invoice_id", pa.string()),
    ("adjustment_id", pa.string()),
    ("adjustment_type", pa.string()),
    ("source", pa.string()),
    ("line_item_ids", pa.list_(pa.string())),
    ("base", AMOUNT),
    ("amount", AMOUNT),
])
# Tax lines (invoicing/taxes/): per taxable line (``line_key``) when rounded per line,
# one per invoice (``line_key`` null) when rounded per invoice; docs/invoicing.md#taxes.
INVOICE_TAXES = pa.schema([
    ("invoice_id", pa.string()),
    ("line_key", pa.string()),  # a document line's key, "credits", or null: the invoice
    ("tax_rate_id", pa.string()),
    ("description", pa.string()),
    ("jurisdiction", pa.string()),  # "FR", "US-CA"
    ("percentage", QUANTITY),  # out of 100; 0 when exempt or reverse charged
    ("inclusive", pa.bool_()),  # in the amounts already, not added to the total
    ("reason", pa.string()),  # taxed | reverse_charge | customer_exempt (Orb's tax_reason)
    ("taxable", AMOUNT),
    ("amount", AMOUNT),
    ("provider", pa.string()),  # rate_table | stripe_tax
])
INVOICE_CORRECTIONS = pa.schema([
    ("correction_id", pa.string()),
    ("document_type", pa.string()),
    ("corrects", pa.string()),
    ("invoice_id", pa.string()),
    ("line_key", pa.string()),
    ("kind", pa.string()),
    ("name", pa.string()),
    ("quantity", QUANTITY),
    ("service_start", pa.date32()),
    ("service_end", pa.date32()),
    ("billed", AMOUNT),
    ("computed", AMOUNT),
    ("amount", AMOUNT),
])
CREDIT_GRANTS = pa.schema([
    ("grant_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("amount", AMOUNT),
    ("cost_basis", QUANTITY),
    ("effective_date", pa.date32()),
    ("expiry_date", pa.date32()),
    ("reason", pa.string()),
])
CREDIT_LEDGER = pa.schema([
    ("entry_type", pa.string()),
    ("grant_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("entry_date", pa.date32()),
    ("amount", AMOUNT),
    ("invoice_id", pa.string()),
])
# Credit ledger entries made by hand (orb credits decrement|void|expire, the API's
# ledger_entry), one file each, written once: invoicing/credit_grants.py
CREDIT_ENTRIES = pa.schema([
    ("entry_id", pa.string()),
    ("entry_type", pa.string()),  # decrement | expiration_change | void
    ("grant_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("entry_date", pa.date32()),
    ("amount", AMOUNT),  # negative: taken off the grant; 0 for an expiration change
    ("new_expiry_date", pa.date32()),
    ("description", pa.string()),
    ("actor", pa.string()),
    ("created_at", INSTANT),
])
ISSUED_DOCUMENTS = pa.schema([
    ("number", pa.string()),
    ("document_type", pa.string()),  # invoice | adjustment_invoice | credit_note
    ("invoice_id", pa.string()),  # the computed invoice it issues or corrects
    ("correction_id", pa.string()),  # <invoice_id>~<n> for a correction
    ("corrects", pa.string()),  # the number of the invoice a correction refers to
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("billing_month", pa.date32()),
    ("invoice_date", pa.date32()),
    ("due_date", pa.date32()),
    ("issued_at", INSTANT),
    ("subtotal", AMOUNT),
    ("adjustments", AMOUNT),
    ("credits_applied", AMOUNT),
    ("total", AMOUNT),
    # added to the total; files issued before taxes lack the column, read as 0
    ("tax", AMOUNT),
])
ISSUED_LINES = pa.schema([
    ("number", pa.string()),
    ("line_key", pa.string()),  # a line item id, or "adjustment:<source>:<id>"
    ("kind", pa.string()),  # line | adjustment | tax | included_tax
    ("name", pa.string()),
    ("quantity", QUANTITY),
    ("service_start", pa.date32()),
    ("service_end", pa.date32()),
    ("amount", AMOUNT),
])
DOCUMENT_EVENTS = pa.schema([
    ("seq", pa.int64()),  # the order of a document's events: clocks can tie
    ("number", pa.string()),
    ("status", pa.string()),  # issued | paid | void
    ("changed_at", INSTANT),
    ("note", pa.string()),
])
# What a document prints besides its amounts, fixed at issue (invoicing/documents.py):
# one row per document that has any, written in its issuing run before the heads.
DOCUMENT_DETAILS = pa.schema([
    ("number", pa.string()),
    ("memo", pa.string()),
    ("reason", pa.string()),  # a manual credit note's: duplicate | fraudulent | ...
    # the custom fields printed, in order: names and values side by side (the exports'
    # DDL has lists, not structs)
    ("custom_field_names", pa.list_(pa.string())),
    ("custom_field_values", pa.list_(pa.string())),
])
# One-off invoices (Orb's POST /invoices), one file each, written once, one row per line
# with the head repeated: invoicing/one_off.py.
ONE_OFF_INVOICES = pa.schema([
    ("invoice_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("invoice_date", pa.date32()),
    ("due_date", pa.date32()),
    ("memo", pa.string()),
    ("will_auto_issue", pa.bool_()),
    ("created_at", INSTANT),
    ("line_index", pa.int32()),
    ("item_id", pa.string()),
    ("name", pa.string()),
    ("quantity", QUANTITY),
    ("unit_amount", pa.decimal128(38, 12)),
    ("amount", AMOUNT),  # quantity x unit_amount, rounded once to the currency
    ("service_start", pa.date32()),
    ("service_end", pa.date32()),  # exclusive
])
# Invoice metadata (Orb's PUT /invoices/{id}): one file per update, written once; a
# null value deletes the key (invoicing/invoice_metadata.py).
INVOICE_METADATA = pa.schema([
    ("update_id", pa.string()),
    ("reference", pa.string()),  # the invoice's id before issue (its computed id)
    ("key", pa.string()),  # null with value null: the whole mapping cleared
    ("value", pa.string()),
    ("updated_at", INSTANT),
])

# A threshold invoice issued mid-period (invoicing/thresholds.py): the usage of one
# subscription's open period on ``final_invoice_id`` up to ``cutoff``, one file per
# invoice, written before it is issued (only those with an issued document count).
THRESHOLD_INVOICES = pa.schema([
    ("invoice_id", pa.string()),  # <final_invoice_id>~<subscription_id>~T<sequence>
    ("final_invoice_id", pa.string()),
    ("subscription_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("sequence", pa.int32()),  # 1, 2, ... within the period
    ("invoice_date", pa.date32()),
    ("cutoff", INSTANT),  # usage before this instant is on it
    ("threshold", AMOUNT),
    ("evaluated_amount", AMOUNT),  # usage not yet invoiced when it was evaluated
    ("recorded_at", INSTANT),
])

# -- payments --------------------------------------------------------------------------

PAYMENT_ATTEMPTS = pa.schema([
    ("record_id", pa.string()),
    ("subject", pa.string()),  # invoice number, or customer:<id>
    ("processor", pa.string()),  # manual | stripe | ...
    ("step", pa.string()),  # customer | invoice | collect | reconcile
    ("attempt", pa.int32()),  # 1, 2, ... per subject and step
    ("phase", pa.string()),  # intent | outcome
    ("idempotency_key", pa.string()),
    ("recorded_at", INSTANT),
    # intent: started; outcome: ok (synced) | paid | failed | flagged
    ("status", pa.string()),
    ("reference", pa.string()),  # the processor's id (customer, invoice, payment)
    ("amount", AMOUNT),
    ("currency", pa.string()),
    ("detail", pa.string()),  # why it failed or was flagged
    ("next_retry_at", INSTANT),  # failed and retryable
])

# Dunning notices (payments/dunning.py, docs/payments.md#dunning): per invoice and step,
# an intent written before the mail is sent (with its Message-ID) and a record once the
# SMTP server accepted it; one file each, written once.
DUNNING_NOTICES = pa.schema([
    ("record_id", pa.string()),  # <number>~<step>~<phase>, e.g. INV-000001~d+7~sent
    ("number", pa.string()),
    ("customer_id", pa.string()),
    ("step", pa.string()),  # d-3, d+1, ...: days from the due date
    ("days_from_due", pa.int32()),
    ("kind", pa.string()),  # reminder (before or on the due date) | past_due
    ("phase", pa.string()),  # intent | sent
    ("message_id", pa.string()),  # the same on a resend after a crash
    ("recorded_at", INSTANT),
    ("recipient", pa.string()),
    ("subject", pa.string()),
    ("currency", pa.string()),
    ("remaining", AMOUNT),  # what the notice says is left to pay
    ("due_date", pa.date32()),
    ("retry_at", INSTANT),  # past_due: the payment retry it requests, else null
])

# Money received for an invoice and money refunded on it, one row per movement, one file
# each, written once: payments/received.py (docs/payments.md).
INVOICE_PAYMENTS = pa.schema([
    ("payment_id", pa.string()),  # <processor>:<its id>, e.g. stripe:in_1P..., manual:<digest>
    ("kind", pa.string()),  # payment | refund
    ("number", pa.string()),  # the invoice (or adjustment invoice)
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    ("amount", AMOUNT),  # positive: received; negative: refunded
    ("processor", pa.string()),
    ("reference", pa.string()),  # the processor's id of the payment or refund
    ("paid_at", INSTANT),  # when the money moved
    ("recorded_at", INSTANT),
    ("source", pa.string()),  # run | file | api | webhook:<event id> | cli
])

# -- customer balance (docs/invoicing.md) ---------------------------------------------

# Orb's customer balance transactions, one file each, written once: invoicing/balance.py.
# Orb's sign: a negative balance is credit the customer holds.
BALANCE_TRANSACTIONS = pa.schema([
    ("transaction_id", pa.string()),
    ("customer_id", pa.string()),
    ("currency", pa.string()),
    # applied_to_invoice | manual_adjustment | credit_note_applied | overpayment | ...
    ("action", pa.string()),
    ("amount", AMOUNT),  # signed change of the balance: negative adds credit
    ("invoice_number", pa.string()),
    ("credit_note_number", pa.string()),
    ("description", pa.string()),
    ("created_at", INSTANT),
])

# -- webhooks (docs/webhooks.md) -------------------------------------------------------

# The state store's outbox, mirrored by the dispatcher: one file per mirror run, in a
# partition named by the first sequence it holds.
WEBHOOK_EVENTS = pa.schema([
    ("sequence", pa.int64()),
    ("event_id", pa.string()),
    ("type", pa.string()),
    ("customer_id", pa.string()),
    ("subscription_id", pa.string()),
    ("created_at", INSTANT),
    ("payload", pa.string()),  # Orb's webhook body, JSON
    ("recorded_at", INSTANT),
])

# -- revenue (docs/revenue.md) ---------------------------------------------------------

MRR = pa.schema([
    ("billing_month", pa.date32()), ("customer_id", pa.string()), ("currency", pa.string()),
    ("fixed_mrr", AMOUNT), ("usage_mrr", AMOUNT), ("mrr", AMOUNT), ("arr", AMOUNT),
    ("cohort_month", pa.date32()),
])
MRR_MOVEMENTS = pa.schema([
    ("billing_month", pa.date32()), ("customer_id", pa.string()), ("currency", pa.string()),
    ("movement", pa.string()), ("previous_mrr", AMOUNT), ("mrr", AMOUNT), ("amount", AMOUNT),
])
COHORT_RETENTION = pa.schema([
    ("billing_month", pa.date32()), ("cohort_month", pa.date32()), ("currency", pa.string()),
    ("months_since_start", pa.int32()), ("customers", pa.int64()),
    ("retained_customers", pa.int64()), ("starting_mrr", AMOUNT), ("mrr", AMOUNT),
    ("nrr", AMOUNT),
])
REVENUE_BY_DIMENSION = pa.schema([
    ("billing_month", pa.date32()), ("currency", pa.string()), ("dimension", pa.string()),
    ("key", pa.string()), ("name", pa.string()), ("customers", pa.int64()),
    ("invoices", pa.int64()), ("fixed_fees", AMOUNT), ("usage_fees", AMOUNT),
    ("adjustments", AMOUNT), ("billed", AMOUNT),
])
REVENUE_RECOGNITION = pa.schema([
    ("billing_month", pa.date32()), ("currency", pa.string()), ("month", pa.date32()),
    ("status", pa.string()), ("deferred_opening", AMOUNT), ("billed", AMOUNT),
    ("recognized", AMOUNT), ("deferred", AMOUNT),
])
BILLED_VS_COLLECTED = pa.schema([
    ("billing_month", pa.date32()), ("currency", pa.string()), ("documents", pa.int64()),
    ("paid_documents", pa.int64()), ("void_documents", pa.int64()), ("billed", AMOUNT),
    ("collected", AMOUNT), ("outstanding", AMOUNT), ("voided", AMOUNT),
])
USAGE_TRENDS = pa.schema([
    ("billing_month", pa.date32()), ("metric_id", pa.string()), ("customers", pa.int64()),
    ("windows", pa.int64()), ("quantity", QUANTITY),
])

# -- state snapshots: the customers and subscriptions a billing run read -----------------
# ``state/lake_snapshot.py`` writes one file per snapshot in each of these tables'
# ``billing_month`` partitions, ``state_snapshots`` last (its row commits the snapshot).
# The other five are the state store's rows and what they add up to (docs/state.md).

SNAPSHOT_ID = pa.field("snapshot_id", pa.string())
STATE_SNAPSHOTS = pa.schema([
    SNAPSHOT_ID,
    ("run_id", pa.string()),  # the Dagster run, or the command, that took it
    ("taken_at", INSTANT),
    ("as_recorded_at", INSTANT),  # rows recorded by then count; null: all of them
    ("as_of", INSTANT),  # customer edits and added adjustments in effect at this instant
    ("store", pa.string()),  # the store's database: sqlite or postgresql
    ("customers", pa.int64()),
    ("subscriptions", pa.int64()),
])
# One row per customer: the fields in effect at the snapshot's instant, and the newest
# version among those applied.
STATE_CUSTOMERS = pa.schema([
    SNAPSHOT_ID,
    ("customer_id", pa.string()),
    ("name", pa.string()),
    ("external_customer_id", pa.string()),
    ("email", pa.string()),
    ("timezone", pa.string()),
    ("net_terms", pa.int32()),
    # Orb's Address and CustomerTaxID, as JSON text
    ("billing_address", pa.string()),
    ("shipping_address", pa.string()),
    ("tax_id", pa.string()),
    ("created_at", INSTANT),
    ("effective_at", INSTANT),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
])
# Every customer version known at the snapshot's instant; ``fields``: the ones it sets.
STATE_CUSTOMER_VERSIONS = pa.schema([
    SNAPSHOT_ID,
    ("version_id", pa.int64()),
    ("customer_id", pa.string()),
    ("fields", pa.list_(pa.string())),
    ("name", pa.string()),
    ("external_customer_id", pa.string()),
    ("email", pa.string()),
    ("timezone", pa.string()),
    ("net_terms", pa.int32()),
    ("billing_address", pa.string()),
    ("shipping_address", pa.string()),
    ("tax_id", pa.string()),
    ("effective_at", INSTANT),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
])
# One row per subscription, as the catalog models it; its coupon redemptions and its
# adjustments as JSON lists in the catalog's shape.
STATE_SUBSCRIPTIONS = pa.schema([
    SNAPSHOT_ID,
    ("subscription_id", pa.string()),
    ("customer_id", pa.string()),
    ("start_date", pa.date32()),
    ("end_date", pa.date32()),
    ("trial_end_date", pa.date32()),
    ("billing_cycle_day", pa.int32()),
    ("align_billing_with_subscription_start_date", pa.bool_()),
    ("coupons", pa.string()),
    ("adjustments", pa.string()),
    ("created_at", INSTANT),
    ("actor", pa.string()),
])
# A subscription's plans over time: [start_date, end_date), end_date null while open.
STATE_SUBSCRIPTION_PHASES = pa.schema([
    SNAPSHOT_ID,
    ("subscription_id", pa.string()),
    ("phase_index", pa.int32()),
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("start_date", pa.date32()),
    ("end_date", pa.date32()),
    ("effective_at", INSTANT),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
])
# Every subscription change row known at the snapshot's instant (state/schema.py's columns).
STATE_SUBSCRIPTION_CHANGES = pa.schema([
    SNAPSHOT_ID,
    ("change_id", pa.int64()),
    ("subscription_id", pa.string()),
    ("kind", pa.string()),
    ("effective_at", INSTANT),
    ("effective_date", pa.date32()),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
    ("plan_id", pa.string()),
    ("plan_version", pa.int32()),
    ("trial_end_date", pa.date32()),
    ("billing_cycle_day", pa.int32()),
    ("align_with_start", pa.bool_()),
    ("coupon_id", pa.string()),
    ("redeemed_on", pa.date32()),
    ("adjustment", pa.string()),
    ("price_id", pa.string()),
    ("quantity", QUANTITY),
])

# Every invoicing-threshold row known at the snapshot's instant (state/thresholds.py):
# a subscription's threshold from ``effective_at`` on, null where a row removes it.
STATE_INVOICING_THRESHOLDS = pa.schema([
    SNAPSHOT_ID,
    ("change_id", pa.int64()),
    ("subscription_id", pa.string()),
    ("threshold", AMOUNT),
    ("effective_at", INSTANT),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
])

# -- billing runs (storage/billing_runs.py) ----------------------------------------------

RUN_ID = pa.field("run_id", pa.string())  # the billing run that wrote the row's partition
# A billing run's commit, written after every table of its month: one file per run.
BILLING_RUNS = pa.schema([
    RUN_ID,
    ("billing_month", pa.date32()),
    ("finished_at", INSTANT),
    ("tables", pa.list_(pa.string())),  # the month tables it wrote, each with its run_id
])


def _by_run(schema: pa.Schema) -> pa.Schema:
    """A month table's file schema: the rows its stage computes, and the run that wrote them."""
    return schema.append(RUN_ID)


# -- the tables ------------------------------------------------------------------------

BILLING_MONTH = "billing_month"  # the billing run's month, YYYY-MM-01
ISSUE_RUN = "issue_run"  # the issuing run that numbered a document (invoicing/documents.py)

# In publication order: the DuckDB views, the exports, their manifest and DDL follow it.
# ``batches``, ``amendments``, ``backfills`` and ``backfill_batches`` are published because
# the events that count are those of committed batches less amended ones, backfills
# applied (visible_batches.sql, active_events.sql).
TABLES: dict[str, Table] = {table.name: table for table in (
    Table("events", EVENTS, "event_date", True,
          "clean usage events, one file per batch and UTC day of their timestamp"),
    Table("quarantine", QUARANTINE, "batch_id", True,
          "rejected events of a batch, with the reason, file and row"),
    Table("batches", BATCHES, "batch_id", True, "a batch's commit record"),
    Table("amendments", AMENDMENTS, "amendment_id", True, "deprecations of past events"),
    Table("backfills", BACKFILLS, "backfill_id", True,
          "event backfills: a timeframe's events added or replaced when closed"),
    Table("backfill_batches", BACKFILL_BATCHES, "batch_id", True,
          "the backfill each backfilled batch belongs to"),
    Table("state_snapshots", STATE_SNAPSHOTS, BILLING_MONTH, True,
          "each state snapshot a billing run read: when, from which store, how many"),
    Table("state_customers", STATE_CUSTOMERS, BILLING_MONTH, True,
          "the customers of each snapshot, as in effect when it was taken"),
    Table("state_customer_versions", STATE_CUSTOMER_VERSIONS, BILLING_MONTH, True,
          "every customer version a snapshot knew"),
    Table("state_subscriptions", STATE_SUBSCRIPTIONS, BILLING_MONTH, True,
          "the subscriptions of each snapshot"),
    Table("state_subscription_phases", STATE_SUBSCRIPTION_PHASES, BILLING_MONTH, True,
          "each subscription's plans over time, per snapshot"),
    Table("state_subscription_changes", STATE_SUBSCRIPTION_CHANGES, BILLING_MONTH, True,
          "every subscription change a snapshot knew"),
    Table("state_invoicing_thresholds", STATE_INVOICING_THRESHOLDS, BILLING_MONTH, True,
          "every invoicing-threshold row a snapshot knew"),
    Table("usage", _by_run(USAGE), BILLING_MONTH, True, "each metric per usage window"),
    Table("line_items", _by_run(LINE_ITEMS), BILLING_MONTH, True,
          "every charge, priced and rounded"),
    Table("sub_line_items", _by_run(SUB_LINE_ITEMS), BILLING_MONTH, True,
          "each line item's breakdown by usage group and tier"),
    Table("rating_exclusions", _by_run(RATING_EXCLUSIONS), BILLING_MONTH, True,
          "customers left out of the month because rating them raised, and why"),
    Table("invoices", _by_run(INVOICES), BILLING_MONTH, True, "the run's computed invoices"),
    Table("invoice_adjustments", _by_run(INVOICE_ADJUSTMENTS), BILLING_MONTH, True,
          "each discount, minimum and maximum applied, in order"),
    Table("invoice_taxes", _by_run(INVOICE_TAXES), BILLING_MONTH, True,
          "tax lines: per taxable line or per invoice, with rate, jurisdiction and reason"),
    Table("invoice_corrections", _by_run(INVOICE_CORRECTIONS), BILLING_MONTH, True,
          "per-line differences between the run and the issued invoices"),
    Table("credit_grants", CREDIT_GRANTS, "grant_id", True,
          "prepaid credit grants, written once"),
    Table("credit_ledger", _by_run(CREDIT_LEDGER), BILLING_MONTH, True,
          "the run's credit drawdowns and expiries"),
    Table("credit_entries", CREDIT_ENTRIES, "entry_id", True,
          "credit decrements, voids and expiry changes made by hand, written once"),
    Table("billing_runs", BILLING_RUNS, BILLING_MONTH, True,
          "each completed billing run of a month, written after all its tables"),
    Table("issued_documents", ISSUED_DOCUMENTS, ISSUE_RUN, True,
          "issued invoices and credit notes, one file per issuing run, written once"),
    Table("issued_lines", ISSUED_LINES, ISSUE_RUN, True,
          "their frozen lines, one file per issuing run"),
    Table("document_events", DOCUMENT_EVENTS, ISSUE_RUN, True,
          "issued / paid / void: a run's 'issued' events in one file, then one per change"),
    Table("document_details", DOCUMENT_DETAILS, ISSUE_RUN, True,
          "memo, credit note reason and custom fields of issued documents, fixed at issue"),
    Table("one_off_invoices", ONE_OFF_INVOICES, "invoice_id", True,
          "one-off invoices (Orb's POST /invoices), one file each, written once"),
    Table("invoice_metadata", INVOICE_METADATA, "update_id", True,
          "invoice metadata updates, one file each, written once"),
    Table("threshold_invoices", THRESHOLD_INVOICES, BILLING_MONTH, True,
          "threshold invoices issued mid-period: whose, up to when, one file each"),
    Table("payment_attempts", PAYMENT_ATTEMPTS, "record_id", True,
          "payment intents and outcomes, written once"),
    Table("dunning_notices", DUNNING_NOTICES, "record_id", True,
          "dunning notices per invoice and step: intent, then sent; written once"),
    Table("invoice_payments", INVOICE_PAYMENTS, "payment_id", True,
          "money received for and refunded on invoices, one movement per file, written once"),
    Table("balance_transactions", BALANCE_TRANSACTIONS, "transaction_id", True,
          "customer balance transactions (Orb's), one per file, written once"),
    Table("webhook_events", WEBHOOK_EVENTS, "first_sequence", True,
          "the outbox's business events (webhooks), mirrored from the state store"),
    Table("mrr", MRR, BILLING_MONTH, True),
    Table("mrr_movements", MRR_MOVEMENTS, BILLING_MONTH, True),
    Table("cohort_retention", COHORT_RETENTION, BILLING_MONTH, True),
    Table("revenue_recognition", REVENUE_RECOGNITION, BILLING_MONTH, True),
    Table("revenue_by_dimension", REVENUE_BY_DIMENSION, BILLING_MONTH, True),
    Table("billed_vs_collected", BILLED_VS_COLLECTED, BILLING_MONTH, True),
    Table("usage_trends", USAGE_TRENDS, BILLING_MONTH, True),
    # DuckDB-version-specific hashes of idempotency keys, only for checking duplicates:
    # numpy runs and a manifest (ingestion/key_index.py), not Parquet.
    Table("keys", None, None, False, "the idempotency-key index"),
    # Each event file's usage per customer, hour and day, which rating reads instead of
    # its events (pricing_sql/rollups.py): Parquet in hour/ and day/ folders, with the
    # columns the catalog's metrics need, so no schema of its own here.
    Table("event_rollups", None, None, False, "usage rolled up for rating"),
)}

PUBLISHED_TABLES = tuple(name for name, table in TABLES.items() if table.published)
INTERNAL_TABLES = tuple(name for name, table in TABLES.items() if not table.published)

# The revenue tables, in the order revenue/compute.py computes and writes them.
REVENUE_SCHEMAS = {
    "mrr": MRR, "mrr_movements": MRR_MOVEMENTS, "cohort_retention": COHORT_RETENTION,
    "revenue_by_dimension": REVENUE_BY_DIMENSION, "revenue_recognition": REVENUE_RECOGNITION,
    "billed_vs_collected": BILLED_VS_COLLECTED, "usage_trends": USAGE_TRENDS,
}
