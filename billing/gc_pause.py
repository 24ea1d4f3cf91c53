"""Building a run's hundreds of thousands of long-lived objects without the cyclic
garbage collector.

Each allocation past a threshold starts a collection that walks the objects built since
the last one, and every so often all of them: building 100,000 customers' and
subscriptions' models spent 1.8 of its 4.0 s in the collector (docs/capacity.md). What is
built there is kept for the run and holds no reference cycle to free, so the collector
waits until it is built and then runs as before.
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
            gc.enable()
