"""The idempotency-key index: which committed batches may already hold a batch's keys.

Checking a batch's keys against every event in the lake must cost about the size of
the batch, not of the lake. The index keeps, for every clean event, DuckDB's 64-bit
``hash(customer_id, idempotency_key)`` and the batch holding it, in a few runs sorted
by hash: numpy arrays on disk, memory-mapped. A batch's sorted hashes are looked up
in each run by binary search, about one cache miss per key whatever the lake's size.
A hash match only names a candidate batch: the keys are then compared exactly
(duplicate_keys.sql), so a collision costs time, never a wrong answer.

Each batch adds one run. Runs are merged by size tier (a size-tiered log-structured
merge): once ``TIER`` runs have sizes within the same power of ``TIER``, they become one
run of the next tier. So a lake of n events in batches of b has at most about
(TIER - 1) x log_TIER(n / b) runs, each hash is rewritten about log_TIER(n / b) times,
and a merge is numpy's stable sort (timsort) over the runs laid end to end, which finds
them already sorted and only merges them: O(n log k) for k runs. A run much
smaller than the batch is searched the other way round (its hashes in the batch's).

Layout under ``lake/keys/`` (internal: never published or exported)::

    manifest.json            the live runs, oldest first, and the DuckDB version whose
                             hash() made them (another version: the index is rebuilt)
    <run>/hashes.npy         uint64, sorted
    <run>/batches.npy        int32, the position of each hash's batch in ids.json
    <run>/ids.json           the run's batch ids

A process that ingests again and again (the landing process of ``orb serve``, a segment
a second) keeps its hash set between ingestions (``HeldKeys``), with the names of the
runs whose hashes it holds: each ingestion first adds the runs another writer made since
(a merge of theirs is added again, harmlessly). Searching the runs instead cost 45 to 95
ms per 50,000-event segment once the lake held 15M events, and grew with the number of
runs (docs/capacity.md#http-ingestion).

A run is written whole under a hidden name and renamed into place before the manifest,
replaced atomically, names it; a crash leaves at worst a run no manifest names, which
the next merge removes. Only ingestion (under the lake's ingest lock) touches it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field

import duckdb
import numpy as np

from ingestion.key_set import KeySet
from storage.lake import Lake, write_atomically

TIER = 16
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Run:
    name: str
    rows: int


def _found(stored: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Which of ``hashes`` (sorted) are in ``stored`` (sorted): a binary search per
    element of the smaller array in the larger."""
    if len(stored) < len(hashes):
        # each stored hash covers the range of its copies in the batch (empty if none)
        edges = np.zeros(len(hashes) + 1, np.int64)
        np.add.at(edges, np.searchsorted(hashes, stored, side="left"), 1)
        np.add.at(edges, np.searchsorted(hashes, stored, side="right"), -1)
        return np.cumsum(edges[:-1]) > 0
    at = np.minimum(np.searchsorted(stored, hashes), len(stored) - 1)
    return stored[at] == hashes


def _tier(rows: int) -> int:
    """The largest t with TIER ** t <= rows (integers: no float logarithm at the edges)."""
    tier = 0
    while TIER ** (tier + 1) <= rows:
        tier += 1
    return tier


def _full_tier(runs: list[Run]) -> list[Run]:
    """The runs of the lowest tier that has TIER of them (none: an empty list)."""
    tiers: dict[int, list[Run]] = {}
    for run in runs:
        tiers.setdefault(_tier(run.rows), []).append(run)
    return next((tiers[t] for t in sorted(tiers) if len(tiers[t]) >= TIER), [])


@dataclass
class HeldKeys:
    """A hash set of every key in one lake's index, which may outlive an ingestion: at
    least every hash of the live runs it ``took``. More is harmless (a hash the set holds
    is only looked up in the runs): a run merged away, or a whole index reset and
    rebuilt under new run names, leaves hashes behind."""

    keys: KeySet = field(default_factory=KeySet)
    took: set[str] = field(default_factory=set)  # run names

    def restart(self, expected: int = 0) -> None:
        """Empty, with room for ``expected`` hashes."""
        self.keys, self.took = KeySet(expected), set()


class KeyIndex:
    """The index, for one ingestion. ``hold_in_memory`` adds a hash set of every key
    (ingestion/key_set.py), which a big ingestion pays for once and then looks each batch
    up in about two memory reads per key instead of a binary search per run."""

    def __init__(self, lake: Lake):
        self.root = lake.table_dir("keys")
        self._held: HeldKeys | None = None
        self._in_set: str | None = None  # the batch whose hashes the set took on lookup

    def rows(self) -> int:
        """How many hashes the runs hold (about the events in the lake)."""
        return sum(run.rows for run in self._runs())

    def hold_in_memory(self, more: int, held: HeldKeys | None = None) -> None:
        """Look batches up in ``held`` (None: a new set), first adding to it the runs it
        has not taken; one that took none starts with room for the runs' hashes and
        ``more``."""
        runs = self._runs()
        if held is None or not held.took:
            held = held or HeldKeys()
            held.restart(sum(run.rows for run in runs) + more)
        for run in runs:
            if run.name not in held.took:  # another writer's (a merge of its own included)
                held.keys.add(self._array(run, "hashes"))
        held.took = {run.name for run in runs}
        self._held = held

    def is_current(self) -> bool:
        """Whether the index exists and was made by this DuckDB version's hash()."""
        manifest = self._manifest()
        return manifest is not None and manifest["duckdb_version"] == duckdb.__version__

    def reset(self) -> None:
        """An empty index for this DuckDB version (before rebuilding it batch by batch)."""
        shutil.rmtree(self.root, ignore_errors=True)
        self._write_manifest([])

    def candidates(self, hashes: np.ndarray, batch_id: str) -> tuple[set[str], np.ndarray]:
        """The other batches holding any of ``hashes`` (sorted uint64), and the hashes
        found there. With the set held, the batch's hashes join it in the same probe
        (the batch's ``add`` comes next; what it drops as duplicates is there already)."""
        batches: set[str] = set()
        found = [np.empty(0, np.uint64)]
        if self._held is not None:
            # the set says which hashes are anywhere; only those are looked up in runs
            hashes = hashes[self._held.keys.add(hashes)]
            self._in_set = batch_id
            if not len(hashes):
                return batches, np.empty(0, np.uint64)
        for run in self._runs():
            stored = self._array(run, "hashes")
            if not len(stored) or not len(hashes):
                continue
            hits = _found(stored, hashes)
            if not hits.any():
                continue
            ids = self._ids(run)
            positions = self._array(run, "batches")
            # a hash may repeat in a run (two batches, or a replay): take all its rows
            values = np.unique(hashes[hits])
            starts = np.searchsorted(stored, values, side="left")
            counts = np.searchsorted(stored, values, side="right") - starts
            rows = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            owners = positions[rows]
            # a replayed batch finds its own earlier keys: those are no duplicates
            others = owners != (ids.index(batch_id) if batch_id in ids else -1)
            batches |= {ids[owner] for owner in np.unique(owners[others])}
            found.append(np.repeat(values, counts)[others])
        return batches, np.unique(np.concatenate(found))

    def shared(self) -> tuple[set[str], np.ndarray]:
        """Hashes held by more than one batch, and those batches: where the whole lake
        may hold a key twice (bench/ingest_bench.py measures dedup this way)."""
        merged, positions, ids = self._sorted_together(self._runs())
        # the same batch id in two runs (a replay) is one batch
        number = {batch: n for n, batch in enumerate(dict.fromkeys(ids))}
        batch_of = np.array([number[b] for b in ids], np.int64)[positions]
        shared = np.unique(merged[1:][(merged[1:] == merged[:-1])
                                      & (batch_of[1:] != batch_of[:-1])])
        if not len(shared):
            return set(), shared
        held = np.isin(merged, shared)
        names = list(number)
        return {names[n] for n in np.unique(batch_of[held])}, shared

    def add(self, batch_id: str, hashes: np.ndarray) -> None:
        """Add a batch's clean hashes (sorted uint64) as a run, then merge full tiers."""
        if not len(hashes):
            return
        if self._held is not None and self._in_set != batch_id:
            self._held.keys.add(hashes)
        runs = self._runs()
        runs.append(self._write_run(hashes, np.zeros(len(hashes), np.int32), [batch_id]))
        self._write_manifest(runs)
        while full := _full_tier(runs):
            runs = [run for run in runs if run not in full] + [self._merge(full)]
            self._write_manifest(runs)
        if self._held is not None:  # the set took the others' hashes, and now this batch's
            self._held.took = {run.name for run in runs}
        self._remove_unlisted(runs)

    def _merge(self, runs: list[Run]) -> Run:
        return self._write_run(*self._sorted_together(runs))

    def _sorted_together(self, runs: list[Run]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The runs' hashes as one sorted array, with each hash's batch position in the
        runs' ids laid end to end. Stable: a hash held by two batches keeps the older
        first. Timsort finds the runs already sorted and only merges them (16 runs of 1M
        in 0.6 s; inserting runs into each other two by two took 3.7 s)."""
        hashes, positions = [np.empty(0, np.uint64)], [np.empty(0, np.int32)]
        ids: list[str] = []
        for run in runs:
            hashes.append(self._array(run, "hashes"))
            positions.append(self._array(run, "batches") + np.int32(len(ids)))
            ids += self._ids(run)
        merged = np.concatenate(hashes)
        order = np.argsort(merged, kind="stable")
        return merged[order], np.concatenate(positions)[order], ids

    def _write_run(self, hashes: np.ndarray, positions: np.ndarray, ids: list[str]) -> Run:
        name = f"run-{uuid.uuid4().hex[:12]}"
        scratch = self.root / f".{name}.tmp"
        scratch.mkdir(parents=True)
        np.save(scratch / "hashes.npy", np.ascontiguousarray(hashes, dtype=np.uint64))
        np.save(scratch / "batches.npy", np.ascontiguousarray(positions, dtype=np.int32))
        (scratch / "ids.json").write_text(json.dumps(ids))
        scratch.rename(self.root / name)
        return Run(name, len(hashes))

    def _ids(self, run: Run) -> list[str]:
        return json.loads((self.root / run.name / "ids.json").read_text())

    def _array(self, run: Run, name: str) -> np.ndarray:
        return np.load(self.root / run.name / f"{name}.npy", mmap_mode="r")

    def _manifest(self) -> dict | None:
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def _runs(self) -> list[Run]:
        manifest = self._manifest()
        if manifest is None:
            raise FileNotFoundError(f"no key index in {self.root}: reset() starts one")
        return [Run(**run) for run in manifest["runs"]]

    def _write_manifest(self, runs: list[Run]) -> None:
        text = json.dumps({"duckdb_version": duckdb.__version__,
                           "runs": [{"name": r.name, "rows": r.rows} for r in runs]})
        write_atomically(self.root / MANIFEST, lambda scratch: scratch.write_text(text))

    def _remove_unlisted(self, runs: list[Run]) -> None:
        """Runs merged away, and anything a crash left (hidden scratch runs, files of
        the per-batch index this one replaced)."""
        live = {run.name for run in runs} | {MANIFEST}
        for path in self.root.iterdir():
            if path.name not in live:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
