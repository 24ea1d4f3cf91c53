"""Building a run's hundreds of thousands of long-lived objects without the cyclic
garbage collector.

Each allocation past a threshold starts a collection that walks the objects built since
the last one, and every so often all of them: building 100,000 customers' and
subscriptions' models spent 1.8 of its 4.0 s in the collector (docs/capacity.md). What is
built there is kept for the run and holds no reference cycle to free, so the collector
waits until it is built and then runs as before.

When the pause ends, what was built goes straight to the oldest generation: the first
young collection after it would walk it all to find it alive (0.02-0.04 s of each run's
usage step at 10,000 customers), and a cycle among it is found by the next full
collection, as any long-lived object's is.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic collection inside; nested uses and an already disabled collector are
    left as they were."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _to_oldest_generation()
            gc.enable()


def _to_oldest_generation() -> None:
    """Every tracked object into the oldest generation, unless some are frozen (the API
    freezes what it loaded at start: unfreezing would give them back to the collector)."""
    if gc.get_freeze_count() == 0:
        gc.freeze()  # into the permanent generation, the young ones' counts reset
        gc.unfreeze()  # from there into the oldest generation
