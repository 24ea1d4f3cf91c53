"""The dunning schedule: when notices go out, in days from an invoice's due date, from
``ORB_DUNNING_STEPS`` (docs/payments.md#dunning).

A step on or before the due date is a *reminder*; one after it a *past-due* notice,
which also brings the invoice's next payment retry forward to the notice's time. A step
is due from the customer's local midnight starting the day ``due_date + days``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

VARIABLE = "ORB_DUNNING_STEPS"
DEFAULT_STEPS = "-3,1,7,14"  # a reminder 3 days before, past-due notices 1, 7, 14 days after
LIMIT_DAYS = 365

NoticeKind = Literal["reminder", "past_due"]


@dataclass(frozen=True, order=True)
class Step:
    days: int  # from the due date: -3 three days before, 7 a week after

    @property
    def name(self) -> str:
        """``d-3``, ``d+0``, ``d+7``: in record ids and Message-IDs."""
        return f"d{self.days:+d}"

    @property
    def kind(self) -> NoticeKind:
        return "reminder" if self.days <= 0 else "past_due"

    def day(self, due_date: date) -> date:
        return due_date + timedelta(days=self.days)


def parse_steps(text: str, variable: str = VARIABLE) -> tuple[Step, ...]:
    """``"-3,1,7,14"`` as steps in time order; every problem named with its variable."""
    problems, days = [], []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = int(part)
        except ValueError:
            problems.append(f"{part!r} is not a whole number of days")
            continue
        if abs(value) > LIMIT_DAYS:
            problems.append(f"{value} is more than {LIMIT_DAYS} days from the due date")
        elif value in days:
            problems.append(f"{value} is given twice")
        else:
            days.append(value)
    if problems:
        raise ValueError(f"{variable}={text!r}: " + "; ".join(problems)
                         + " (e.g. -3,1,7,14: days from the due date, comma-separated)")
    return tuple(sorted(Step(d) for d in days))


def steps_from_env() -> tuple[Step, ...]:
    return parse_steps(os.environ.get(VARIABLE, DEFAULT_STEPS))
