"""Time partitions shared by the assets: UTC days for events, calendar months for billing.

A billing month's run makes the invoices dated after its 1st up to the next 1st
(docs/invoicing.md). The current month is a partition too: run during the month, it
holds running drafts (usage so far), which the run on the 2nd of the next month
replaces; a draft is never issued before its date.
"""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

# The first day the lake can hold; override for older history.
FIRST_DAY = os.environ.get("ORB_FIRST_DAY", "2025-01-01")

DAILY = dg.DailyPartitionsDefinition(start_date=FIRST_DAY)
MONTHLY = dg.MonthlyPartitionsDefinition(start_date=FIRST_DAY, end_offset=1)


def billing_month(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)
