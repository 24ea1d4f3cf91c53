"""The key index names exactly the earlier batches holding a hash, however runs merge."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.key_index import TIER, HeldKeys, KeyIndex
from storage.lake import Lake

# Small hash values so that batches share some; up to 40 batches of up to 12 hashes, so
# that sixteen runs of one size tier (1 to 15 hashes) merge, unevenly.
batches = st.lists(st.lists(st.integers(0, 60), max_size=12), min_size=1, max_size=40)


def assert_candidates_are_the_holders(index, batches, probe):
    """The batch probing is "b0": its own hashes are never candidates."""
    holders = {h: {f"b{n}" for n, hs in enumerate(batches) if h in hs} - {"b0"} for h in probe}
    found, hashes = index.candidates(np.sort(np.array(probe, np.uint64)), "b0")
    assert found == set().union(*holders.values())
    assert sorted(hashes.tolist()) == sorted(h for h, held in holders.items() if held)


@settings(max_examples=60, deadline=None)
@given(batches=batches, probe=st.lists(st.integers(0, 70), max_size=30),
       in_memory=st.booleans())
def test_candidates_are_the_batches_holding_a_hash(tmp_path_factory, batches, probe,
                                                   in_memory):
    index = KeyIndex(Lake(tmp_path_factory.mktemp("lake")))
    index.reset()
    for number, hashes in enumerate(batches):
        if in_memory and number == len(batches) // 2:
            index.hold_in_memory(0)  # built from the runs so far, then kept up to date
        index.add(f"b{number}", np.sort(np.array(hashes, np.uint64)))
    assert_candidates_are_the_holders(index, batches, probe)
    # across the whole lake: hashes in two or more batches, and every batch holding one
    shared = {h for h in range(61) if sum(h in hs for hs in batches) > 1}
    holding, hashes = index.shared()
    assert holding == {f"b{n}" for n, hs in enumerate(batches) if set(hs) & shared}
    assert hashes.tolist() == sorted(shared)


@settings(max_examples=60, deadline=None)
@given(batches=batches, kept=st.lists(st.booleans(), min_size=40, max_size=40),
       probe=st.lists(st.integers(0, 70), max_size=30))
def test_a_set_kept_between_ingestions_misses_no_key_another_writer_added(
        tmp_path_factory, batches, kept, probe):
    """One writer keeps its set from ingestion to ingestion (the landing process);
    another ingests between (a file ingestion), and its merges rename runs."""
    lake = Lake(tmp_path_factory.mktemp("lake"))
    KeyIndex(lake).reset()
    held = HeldKeys()
    for number, hashes in enumerate(batches):
        index = KeyIndex(lake)  # one per ingestion, as ingest_files makes it
        batch = np.sort(np.array(hashes, np.uint64))
        if kept[number]:
            index.hold_in_memory(0, held)
            index.candidates(batch, f"b{number}")  # a batch is looked up, then added
        index.add(f"b{number}", batch)
    index = KeyIndex(lake)
    index.hold_in_memory(0, held)
    assert_candidates_are_the_holders(index, batches, probe)


def test_a_kept_set_takes_a_rebuilt_index_again(tmp_path):
    lake = Lake(tmp_path)
    index = KeyIndex(lake)
    index.reset()
    held = HeldKeys()
    index.hold_in_memory(0, held)
    index.add("b1", np.array([1, 2], np.uint64))
    # the index is rebuilt (another DuckDB version's hash()): new runs, new values
    index = KeyIndex(lake)
    index.reset()
    index.add("b1", np.array([7, 9], np.uint64))
    index = KeyIndex(lake)
    index.hold_in_memory(0, held)
    found, hashes = index.candidates(np.array([2, 9], np.uint64), "b2")
    assert (found, hashes.tolist()) == ({"b1"}, [9])


def test_runs_of_one_size_tier_merge_sixteen_at_a_time(tmp_path):
    lake = Lake(tmp_path)
    index = KeyIndex(lake)
    index.reset()

    def sizes():
        manifest = json.loads((lake.table_dir("keys") / "manifest.json").read_text())
        return [run["rows"] for run in manifest["runs"]]

    def add(numbers):
        for number in numbers:
            index.add(f"b{number}", np.arange(number * 100, number * 100 + 100,
                                              dtype=np.uint64))

    # batches of 100 hashes (tier 1: 16 <= 100 < 256): fifteen wait side by side, the
    # 16th makes one run of 1,600 (tier 2: 256 <= 1,600 < 4,096)
    assert TIER == 16
    add(range(15))
    assert sizes() == [100] * 15
    add([15])
    assert sizes() == [1600]
    # 17 more: one more run of 1,600 and one of 100 beside the first
    add(range(16, 33))
    assert sizes() == [1600, 1600, 100]
    # only the live runs and the manifest are left on disk
    assert len(list(lake.table_dir("keys").iterdir())) == 4
    # and every hash still names its batch
    found, _ = index.candidates(np.array([0, 3299], np.uint64), "other")
    assert found == {"b0", "b32"}


def test_a_run_left_by_a_crash_is_not_read_and_is_removed(tmp_path):
    lake = Lake(tmp_path)
    index = KeyIndex(lake)
    index.reset()
    index.add("b1", np.array([5], np.uint64))
    # a crash after writing a run, before the manifest named it
    orphan = lake.table_dir("keys") / "run-orphan"
    orphan.mkdir()
    np.save(orphan / "hashes.npy", np.array([7], np.uint64))
    found, hashes = index.candidates(np.array([5, 7], np.uint64), "b9")
    assert (found, hashes.tolist()) == ({"b1"}, [5])
    index.add("b2", np.array([9], np.uint64))
    assert not orphan.exists()
