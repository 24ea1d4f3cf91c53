"""Time partitions shared by the assets: UTC days for events, calendar months for billing.

A billing month is cut at each customer's local midnight, so it can reach one UTC
day into the months on either side; the rating step reads those edge days too.
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

# The first day the lake can hold; override for older history.
FIRST_DAY = os.environ.get("ORB_FIRST_DAY", "2025-01-01")

DAILY = dg.DailyPartitionsDefinition(start_date=FIRST_DAY)
MONTHLY = dg.MonthlyPartitionsDefinition(start_date=FIRST_DAY)


def billing_month(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)
