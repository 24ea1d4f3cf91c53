"""When a failed delivery is tried again (docs/webhooks.md#retries).

Exponential, without jitter so that a test's clock can drive it: after the first
attempt fails, the next waits 5 seconds, then 5 minutes, 30 minutes, 2 hours, 5 hours,
then every 10 hours, until an attempt would start more than 3 days after the first one:
then the delivery has failed (it stays replayable). With instant responses that is 12
attempts, the last 67 h 35 min 5 s after the first (5 s + 5 min + 30 min + 2 h + 5 h + 6 x 10 h).
"""

from __future__ import annotations

from datetime import datetime, timedelta

DELAYS = (timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
          timedelta(hours=2), timedelta(hours=5))
STEADY = timedelta(hours=10)  # every delay after DELAYS
WINDOW = timedelta(days=3)


def next_attempt_at(attempt: int, failed_at: datetime, first_at: datetime,
                    window: timedelta = WINDOW) -> datetime | None:
    """When to try again after attempt ``attempt`` (1, 2, ...) failed at ``failed_at``,
    the first having started at ``first_at``; None: the window is over, give up."""
    delay = DELAYS[attempt - 1] if attempt <= len(DELAYS) else STEADY
    at = failed_at + delay
    return at if at <= first_at + window else None
