"""An in-memory hash set of key hashes, to look up a whole batch at once.

Looking a batch up in every sorted run of the key index (ingestion/key_index.py) costs
a binary search per key per run: about half a second per 1M-event batch once the lake
holds 100M events. This set answers "is this hash anywhere in the index?" in a couple
of memory reads per key, whatever the lake's size, and adds the batch's new hashes in
the same probe; the few hashes it finds are then looked up in the runs to name their
batches. It lives for one ingestion, is built from the runs, and costs about 16 bytes
of memory per event in the lake.

Open addressing with linear probing, vectorized over a batch in numpy. A hash's home
slot is its top bits (DuckDB's hashes are uniformly spread), so a batch's sorted
hashes visit the table in order, which memory reads ahead far better than scattered
slots. 0 marks an empty slot, so a hash of 0 is kept as 1: it can only match more, and
every match is checked exactly afterwards. The table doubles before it is half full,
which keeps the runs of occupied slots short.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.uint64(0)
MIN_SLOTS = 1 << 16


class KeySet:
    def __init__(self, expected: int = 0):
        self._table = np.zeros(_capacity(expected), np.uint64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, hashes: np.ndarray) -> np.ndarray:
        """Add ``hashes``; which of them the set held before (one probe does both)."""
        keys = _stored(hashes)
        order = None
        if not (keys[1:] >= keys[:-1]).all():  # a batch's hashes come sorted
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
        first = np.ones(len(keys), bool)
        first[1:] = keys[1:] != keys[:-1]
        unique = keys[first]
        if 2 * (self._count + len(unique)) > len(self._table):
            self._grow(self._count + len(unique))
        held = self._place(unique)[np.cumsum(first) - 1]
        if order is None:
            return held
        unsorted = np.empty_like(held)
        unsorted[order] = held
        return unsorted

    def _place(self, keys: np.ndarray) -> np.ndarray:
        """Put unique ``keys`` in their slots; which were there already. The keys must
        be sorted: then the keys racing for a slot stand side by side."""
        held_before = np.zeros(len(keys), bool)
        which, slot = np.arange(len(keys)), self._home(keys)
        while len(which):
            held = self._table[slot]
            present = held == keys[which]
            held_before[which[present]] = True
            free = held == EMPTY
            placed = free & _first_at_slot(slot, free)
            self._table[slot[placed]] = keys[which[placed]]
            self._count += int(placed.sum())
            going = ~(placed | present)
            which, slot = which[going], self._next(slot[going])
        return held_before

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return keys >> np.uint64(64 - (len(self._table).bit_length() - 1))

    def _next(self, slot: np.ndarray) -> np.ndarray:
        return (slot + np.uint64(1)) & np.uint64(len(self._table) - 1)

    def _grow(self, needed: int) -> None:
        """Re-place every key in a bigger table without probing rounds: in sorted order
        into an empty table, a key's slot is its home or the one after the previous
        key's, whichever comes later. Only keys that run past the end wrap, through
        ``_place``. (Placing all in rounds took 3.7 s at 16M keys, a stall of landing.)"""
        # in slot order the keys are sorted but within a run of occupied slots and where
        # runs wrap past the end: a stable sort (timsort) finds them nearly in order
        keys = np.sort(self._table[self._table != EMPTY], kind="stable")
        self._table = np.zeros(_capacity(needed), np.uint64)
        order = np.arange(len(keys))
        slots = np.maximum.accumulate(self._home(keys).astype(np.int64) - order) + order
        inside = slots < len(self._table)
        self._table[slots[inside]] = keys[inside]
        self._count = int(inside.sum())
        self._place(keys[~inside])


def bytes_for(expected: int) -> int:
    """The memory a set of ``expected`` hashes takes."""
    return _capacity(expected) * EMPTY.itemsize


def _capacity(expected: int) -> int:
    """A power of two over twice ``expected``: at most half full."""
    slots = MIN_SLOTS
    while slots < 2 * expected + 1:
        slots *= 2
    return slots


def _first_at_slot(slot: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Of the keys reaching a free slot in one round, the first claims it; the rest walk
    on. Keys racing for a slot have walked equally far, so they share a home slot, and
    sorted keys sharing a home stand side by side (wrapping past the end or not)."""
    wanted = slot[free]
    claims = np.zeros(len(slot), bool)
    claims[free] = np.concatenate([[True], wanted[1:] != wanted[:-1]]) if len(wanted) else []
    return claims


def _stored(hashes: np.ndarray) -> np.ndarray:
    keys = np.asarray(hashes, np.uint64)
    return np.where(keys == EMPTY, np.uint64(1), keys)
