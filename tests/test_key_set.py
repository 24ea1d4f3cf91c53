"""The key set holds exactly what was added, through growth, clustered hashes and probes
that wrap past the end of the table."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.key_set import KeySet

# Uniform hashes, plus values that all want the first slot (top bits 0) so that long
# runs of occupied slots form; enough of them that the table grows.
hashes = st.integers(0, 2**64 - 1) | st.integers(0, 2**20)
batches = st.lists(st.lists(hashes, max_size=400), min_size=1, max_size=6)


def stored(values):
    return {1 if v == 0 else v for v in values}  # 0 is kept as 1


@settings(max_examples=120, deadline=None)
@given(batches=batches, ordered=st.booleans())
def test_each_add_names_exactly_what_was_there_before(batches, ordered):
    key_set, added = KeySet(), set()
    for batch in batches:
        batch = sorted(batch) if ordered else batch
        held = key_set.add(np.array(batch, np.uint64)).tolist()
        # copies within one batch were not there before it either
        assert held == [(1 if v == 0 else v) in added for v in batch]
        added |= stored(batch)
    assert len(key_set) == len(added)


def test_keys_racing_for_a_slot_past_the_end_of_the_table():
    key_set = KeySet()  # 65,536 slots: a key's home is its top 16 bits

    def key(home, low):
        return (home << 48) | low

    assert not key_set.add(np.array([key(10, 1), key(65535, 1)], np.uint64)).any()
    # both homes taken: key(10, 2) walks to slot 11 while the other two wrap to slot 0
    # in the same round and race for it; the loser goes on to slot 1
    batch = np.array([key(10, 2), key(65535, 2), key(65535, 3)], np.uint64)
    assert not key_set.add(batch).any()
    assert len(key_set) == 5
    assert key_set.add(np.array([key(10, 1), key(10, 2), key(10, 3), key(65535, 1),
                                 key(65535, 2), key(65535, 3)], np.uint64)).tolist() == [
        True, True, False, True, True, True]
    assert len(key_set) == 6


def test_it_doubles_before_it_is_half_full():
    key_set = KeySet()
    keys = np.random.default_rng(1).integers(1, 2**64 - 1, size=40_000, dtype=np.uint64)
    assert not key_set.add(keys).any()
    # 65,536 slots hold at most 32,768 hashes: 40,000 need 131,072
    assert len(key_set._table) == 131_072 and len(key_set) == 40_000
    assert key_set.add(keys).all()


def test_growing_keeps_keys_that_run_past_the_end_of_the_table():
    """2,000 keys that want the last slot wrap to the start of the table, and again
    once it has grown (65,536 slots, half full at 32,768; then 131,072): every key is
    still found, and nothing else."""
    last = [(0xFFFF << 48) | low for low in range(1, 2_001)]
    spread = [(home << 48) | 1 for home in range(10_000, 41_000)]  # a home each
    key_set = KeySet()
    assert not key_set.add(np.array(sorted(last + spread[:30_000]), np.uint64)).any()
    assert not key_set.add(np.array(spread[30_000:], np.uint64)).any()  # grows first
    assert len(key_set._table) == 1 << 17
    everything = last + spread + [5]
    assert key_set.add(np.array(everything, np.uint64)).tolist() == [True] * 33_000 + [False]
    assert len(key_set) == 33_001
