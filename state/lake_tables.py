"""The Arrow schemas of a snapshot's tables (``Snapshot.tables()``): the lake's
``state_*`` tables (declared in ``storage/tables.py``) without their ``snapshot_id``,
which the lake adds when it keeps a snapshot (``state/lake_snapshot.py``)."""

from __future__ import annotations

import pyarrow as pa

from storage import tables

__all__ = ["CUSTOMERS", "CUSTOMER_VERSIONS", "SCHEMAS", "SUBSCRIPTIONS",
           "SUBSCRIPTION_CHANGES", "SUBSCRIPTION_PHASES"]


def _without_id(schema: pa.Schema) -> pa.Schema:
    return schema.remove(schema.get_field_index(tables.SNAPSHOT_ID.name))


CUSTOMERS = _without_id(tables.STATE_CUSTOMERS)
CUSTOMER_VERSIONS = _without_id(tables.STATE_CUSTOMER_VERSIONS)
SUBSCRIPTIONS = _without_id(tables.STATE_SUBSCRIPTIONS)
SUBSCRIPTION_PHASES = _without_id(tables.STATE_SUBSCRIPTION_PHASES)
SUBSCRIPTION_CHANGES = _without_id(tables.STATE_SUBSCRIPTION_CHANGES)
# Snapshot.tables()' names, and the lake table each is kept in (``state_<name>``)
SCHEMAS = {"customers": CUSTOMERS, "customer_versions": CUSTOMER_VERSIONS,
           "subscriptions": SUBSCRIPTIONS, "subscription_phases": SUBSCRIPTION_PHASES,
           "subscription_changes": SUBSCRIPTION_CHANGES}
