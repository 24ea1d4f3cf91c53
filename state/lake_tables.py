"""The Arrow schemas of a snapshot's tables (``Snapshot.tables()``), shaped for the lake.
Not lake tables yet: when the billing runs read the store, they are declared in
``storage/tables.py`` with these schemas."""

from __future__ import annotations

import pyarrow as pa

from storage.tables import INSTANT, QUANTITY

# One row per customer: the fields in effect at the snapshot's instant, and the newest
# version among those applied.
CUSTOMERS = pa.schema([
    ("customer_id", pa.string()),
    ("name", pa.string()),
    ("external_customer_id", pa.string()),
    ("email", pa.string()),
    ("timezone", pa.string()),
    ("net_terms", pa.int32()),
    ("created_at", INSTANT),
    ("effective_at", INSTANT),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
])
# Every version known at the snapshot's instant; ``fields``: the ones it sets.
CUSTOMER_VERSIONS = pa.schema([
    ("version_id", pa.int64()),
    ("customer_id", pa.string()),
    ("fields", pa.list_(pa.string())),
    ("name", pa.string()),
    ("external_customer_id", pa.string()),
    ("email", pa.string()),
    ("timezone", pa.string()),
    ("net_terms", pa.int32()),
    ("effective_at", INSTANT),
    ("recorded_at", INSTANT),
    ("actor", pa.string()),
])
REDEMPTION = pa.struct([("coupon_id", pa.string()), ("redeemed_on", pa.date32())])
# One row per subscription, as the catalog models it; adjustments as a JSON list.
SUBSCRIPTIONS = pa.schema([
    ("subscription_id", pa.string()),
    ("customer_id", pa.string()),
    ("start_date", pa.date32()),
    ("end_date", pa.date32()),
    ("trial_end_date", pa.date32()),
    ("billing_cycle_day", pa.int32()),
    ("align_billing_with_subscription_start_date", pa.bool_()),
    ("coupons", pa.list_(REDEMPTION)),
    ("adjustments", pa.string()),
    ("created_at", INSTANT),
    ("actor", pa.string()),
])
# A subscription's plans over time: [start_date, end_date), end_date null while open.
SUBSCRIPTION_PHASES = pa.schema([
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
# Every change row known at the snapshot's instant (state/schema.py's columns).
SUBSCRIPTION_CHANGES = pa.schema([
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
SCHEMAS = {"customers": CUSTOMERS, "customer_versions": CUSTOMER_VERSIONS,
           "subscriptions": SUBSCRIPTIONS, "subscription_phases": SUBSCRIPTION_PHASES,
           "subscription_changes": SUBSCRIPTION_CHANGES}
