"""The calls a path that writes a fact makes right after the fact commits
(docs/webhooks.md): ``orb invoices issue|pay|void``, the API's issue, pay and void, the
issuing job and the payment run (lake facts), and ``orb export`` (an export's success)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from state import StateStore, outbox
from state.database import writing
from state.outbox import OutboxEvent, derived_event_id
from storage.settings import Deployment
from webhooks import lake_facts


def after_lake_write(deployment: Deployment, at: datetime) -> int | None:
    """Append the events of the lake's facts the outbox does not have yet; how many.
    None when the state store cannot be reached: the fact is in the lake already, and the
    dispatcher's catch-up appends its event, with the same id, before its next pass."""
    try:
        with StateStore.open(deployment.state_store_url) as store:
            return lake_facts.publish(deployment.lake, store.engine, at)
    except (sa.exc.SQLAlchemyError, OSError):
        return None


def export_succeeded(state_store_url: str, manifest: dict[str, Any], destination: str,
                     started_at: datetime, ended_at: datetime) -> int | None:
    """Append ``data_exports.transfer_success`` for the export ``manifest`` describes
    (its id made from the export's id); None when the state store cannot be reached.
    The destination is not the lake: no catch-up finds an export this call missed."""
    tables = sorted(manifest["tables"])
    event = OutboxEvent(
        derived_event_id("data_exports.transfer_success", manifest["export_id"]),
        "data_exports.transfer_success", ended_at,
        {"properties": {
            "description": f"export {manifest['export_id']} of {len(tables)} tables",
            "destination_name": destination, "resources": tables,
            "rows_transferred": sum(entry["rows"] for entry in manifest["tables"].values()),
            "transfer_started_at": _instant(started_at),
            "transfer_ended_at": _instant(ended_at)}})
    try:
        with StateStore.open(state_store_url) as store, \
                writing(store.engine) as connection:
            return outbox.append(connection, [event], ended_at, "orb export")
    except (sa.exc.SQLAlchemyError, OSError):
        return None


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
