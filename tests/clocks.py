"""A settable clock for the code that takes one (``clock=``): the tests move time."""

from __future__ import annotations

from datetime import datetime


class Clock:
    """Returns ``now``, an instant the test sets (an aware datetime or ISO 8601 text)."""

    def __init__(self, now: datetime | str):
        self.set(now)

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime | str) -> None:
        self.now = datetime.fromisoformat(now) if isinstance(now, str) else now
