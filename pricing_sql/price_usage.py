"""The usages a price is rated on besides its metric's own: the usage of its ``filter``
and of its dimension values (a dimensional price group's, ``billing/catalog/price_groups.py``),
and, where a tier caps each event's fee (``per_unit_maximum``), the volume and the count
of the events over the cap.

Each is the metric's SQL rewritten as a syntax tree (``metrics.py``), computed with the
metrics in the same query, one row per usage window under its own key in the ``usage``
table; ``rate_usage.sql`` reads them by the keys ``price_terms`` and ``price_tiers``
carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlglot import exp

from billing.catalog import Catalog
from billing.catalog.prices import Price, ProgramTier
from pricing_sql.metrics import DIALECT, filtered_metric, over_cap_metrics, parse_filter


def over_cap_ids(usage_id: str, tier: ProgramTier) -> tuple[str, str]:
    """The usage keys of the volume and the count of the events over ``tier``'s cap."""
    cap, rate = (format(value.normalize(), "f")
                 for value in (tier.per_unit_maximum or Decimal(0), tier.rate))
    label = f"{usage_id} OVER {cap} AT {rate}"
    return f"{label}: volume", f"{label}: count"


def price_dimensions(catalog: Catalog, price: Price) -> tuple[str, ...]:
    """The event properties a dimensional price's values are for (none for another)."""
    config = price.dimensional_price_configuration
    if config is None:
        return ()
    return tuple(catalog.dimensional_price_group(config.group_ref).dimensions)


def usage_filter(price: Price, dimensions: Sequence[str]) -> str | None:
    """The price's filter and its dimension values (``properties.<dimension> = '<value>'``
    each, built as a syntax tree) as one condition, or None."""
    conditions: list[exp.Expr] = [parse_filter(price.filter)] if price.filter else []
    config = price.dimensional_price_configuration
    if config is not None:
        conditions += [exp.EQ(this=exp.column(dimension, table="properties"),
                              expression=exp.Literal.string(value))
                       for dimension, value in zip(dimensions, config.dimension_values,
                                                   strict=True)]
    return exp.and_(*conditions).sql(dialect=DIALECT) if conditions else None


def price_usages(price: Price, metric_sql: str, dimensions: Sequence[str] = ()
                 ) -> dict[str, str]:
    """Usage key -> SQL of each usage ``price`` needs beyond its metric's; raises
    ``MetricSQLError`` when its filter or its metric cannot give them. ``dimensions``:
    a dimensional price's group's (``price_dimensions``)."""
    usages = {}
    sql = metric_sql
    condition = usage_filter(price, dimensions)
    if condition is not None:
        sql = filtered_metric(metric_sql, condition)
        usages[str(price.usage_metric_id)] = sql
    for tier in price.invoice_program().tiers:
        if tier.per_unit_maximum is not None:
            volume, count = over_cap_metrics(sql, tier.rate, tier.per_unit_maximum)
            volume_id, count_id = over_cap_ids(str(price.usage_metric_id), tier)
            usages |= {volume_id: volume, count_id: count}
    return usages
