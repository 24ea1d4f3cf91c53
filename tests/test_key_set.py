"""The key set holds exactly what was added, through growth and clustered hashes."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.key_set import KeySet

# Uniform hashes, plus values that all want the first slot (top bits 0) so that long
# runs of occupied slots form; enough of them that the table grows.
hashes = st.integers(0, 2**64 - 1) | st.integers(0, 2**20)
batches = st.lists(st.lists(hashes, max_size=400), min_size=1, max_size=6)


@settings(max_examples=80, deadline=None)
@given(batches=batches, probe=st.lists(hashes, max_size=60))
def test_contains_exactly_what_was_added(batches, probe):
    key_set, added = KeySet(), set()
    for batch in batches:
        key_set.add(np.array(batch, np.uint64))
        added |= set(batch)
    found = key_set.contains(np.array(probe, np.uint64)).tolist()
    # 0 is kept as 1: asking for either finds both
    same = added | ({0, 1} if added & {0, 1} else set())
    assert found == [value in same for value in probe]
    assert len(key_set) == len({1 if v == 0 else v for v in added})


def test_it_doubles_before_it_is_half_full():
    key_set = KeySet()
    keys = np.random.default_rng(1).integers(1, 2**64 - 1, size=40_000, dtype=np.uint64)
    key_set.add(keys)
    # 65,536 slots hold at most 32,768 hashes: 40,000 need 131,072
    assert len(key_set._table) == 131_072 and len(key_set) == 40_000
    assert key_set.contains(keys).all()
