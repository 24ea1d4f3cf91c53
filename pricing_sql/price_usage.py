"""The usages a price is rated on besides its metric's own: the usage of its ``filter``,
and, where a tier caps each event's fee (``per_unit_maximum``), the volume and the count
of the events over the cap.

Each is the metric's SQL rewritten as a syntax tree (``metrics.py``), computed with the
metrics in the same query, one row per usage window under its own key in the ``usage``
table; ``rate_usage.sql`` reads them by the keys ``price_terms`` and ``price_tiers``
carry.
"""

from __future__ import annotations

from decimal import Decimal

from billing.catalog.prices import Price, ProgramTier
from pricing_sql.metrics import filtered_metric, over_cap_metrics


def over_cap_ids(usage_id: str, tier: ProgramTier) -> tuple[str, str]:
    """The usage keys of the volume and the count of the events over ``tier``'s cap."""
    cap, rate = (format(value.normalize(), "f")
                 for value in (tier.per_unit_maximum or Decimal(0), tier.rate))
    label = f"{usage_id} OVER {cap} AT {rate}"
    return f"{label}: volume", f"{label}: count"


def price_usages(price: Price, metric_sql: str) -> dict[str, str]:
    """Usage key -> SQL of each usage ``price`` needs beyond its metric's; raises
    ``MetricSQLError`` when its filter or its metric cannot give them."""
    usages = {}
    sql = metric_sql
    if price.filter is not None:
        sql = filtered_metric(metric_sql, price.filter)
        usages[str(price.usage_metric_id)] = sql
    for tier in price.invoice_program().tiers:
        if tier.per_unit_maximum is not None:
            volume, count = over_cap_metrics(sql, tier.rate, tier.per_unit_maximum)
            volume_id, count_id = over_cap_ids(str(price.usage_metric_id), tier)
            usages |= {volume_id: volume, count_id: count}
    return usages
