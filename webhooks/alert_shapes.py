"""An alert in Orb's shape (``orb.types.Alert``), for the API and for the alert events'
``alert_configuration``: the same fields, numbers in the API and strings in a webhook
body, as Orb's two types have them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from state.alerts import CUSTOMER_TYPES, Alert, threshold_text


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def api_number(value: Decimal) -> float:
    """Orb's API answers thresholds as JSON numbers (a double holds a threshold of up to
    15 digits exactly)."""
    return float(value)


def alert_shape(alert: Alert, external_customer_id: str | None,
                in_alert: Mapping[Decimal, bool], number: Callable[[Decimal], Any] = api_number,
                ) -> dict[str, Any]:
    """``in_alert``: each watched threshold's state (credit-balance alerts); ``number``:
    how a value is written (a JSON number in the API, ``threshold_text`` in a webhook)."""
    balance = alert.type in CUSTOMER_TYPES
    return {
        "id": alert.alert_id, "created_at": iso(alert.created_at),
        "currency": alert.currency, "enabled": alert.enabled, "type": alert.type,
        "customer": {"id": alert.customer_id, "external_customer_id": external_customer_id},
        "subscription": {"id": alert.subscription_id} if alert.subscription_id else None,
        "metric": {"id": alert.metric_id} if alert.metric_id else None,
        "plan": None,
        "thresholds": [{"value": number(t)} for t in alert.thresholds] if alert.thresholds
        else None,
        "balance_alert_status": [
            {"in_alert": state, "threshold_value": number(threshold)}
            for threshold, state in sorted(in_alert.items())] if balance else None,
        "grouping_keys": None, "license_type": None, "price_filters": None,
        "threshold_overrides": None,
    }


def webhook_number(value: Decimal) -> str:
    return threshold_text(value)
