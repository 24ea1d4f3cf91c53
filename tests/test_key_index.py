"""The key index names exactly the earlier batches holding a hash, however runs merge."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.key_index import TIER, KeyIndex
from storage.lake import Lake

# Small hash values so that batches share some; batch sizes vary so runs merge unevenly.
batches = st.lists(st.lists(st.integers(0, 60), max_size=40), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(batches=batches, probe=st.lists(st.integers(0, 70), max_size=30))
def test_candidates_are_the_batches_holding_a_hash(tmp_path_factory, batches, probe):
    index = KeyIndex(Lake(tmp_path_factory.mktemp("lake")))
    index.reset()
    for number, hashes in enumerate(batches):
        index.add(f"b{number}", np.sort(np.array(hashes, np.uint64)))
    # the batch probing is "b0": its own hashes are never candidates
    holders = {h: {f"b{n}" for n, hs in enumerate(batches) if h in hs} - {"b0"} for h in probe}
    found, hashes = index.candidates(np.sort(np.array(probe, np.uint64)), "b0")
    assert found == set().union(*holders.values())
    assert sorted(hashes.tolist()) == sorted(h for h, held in holders.items() if held)
    # across the whole lake: hashes in two or more batches, and every batch holding one
    shared = {h for h in range(61) if sum(h in hs for hs in batches) > 1}
    holding, hashes = index.shared()
    assert holding == {f"b{n}" for n, hs in enumerate(batches) if set(hs) & shared}
    assert hashes.tolist() == sorted(shared)


def test_runs_of_one_size_tier_merge_four_at_a_time(tmp_path):
    lake = Lake(tmp_path)
    index = KeyIndex(lake)
    index.reset()

    def sizes():
        manifest = json.loads((lake.table_dir("keys") / "manifest.json").read_text())
        return [run["rows"] for run in manifest["runs"]]

    # batches of 100 hashes (tier 3: 64 <= 100 < 256): the 4th makes one run of 400
    # (tier 4: 256 <= 400 < 1024), the next three wait beside it
    for number in range(7):
        index.add(f"b{number}", np.arange(number * 100, number * 100 + 100, dtype=np.uint64))
    assert TIER == 4 and sizes() == [400, 100, 100, 100]
    # the 16th batch: four runs of 400, then one of 1,600
    for number in range(7, 16):
        index.add(f"b{number}", np.arange(number * 100, number * 100 + 100, dtype=np.uint64))
    assert sizes() == [1600]
    # only the live runs and the manifest are left on disk
    assert len(list(lake.table_dir("keys").iterdir())) == 2
    # and every hash still names its batch
    found, _ = index.candidates(np.array([0, 1599], np.uint64), "other")
    assert found == {"b0", "b15"}


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
