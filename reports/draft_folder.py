"""The folder of a month's draft documents (``reports/invoices/<YYYY-MM>/``), kept current
in place: a draft is written again only when its fingerprint changed, a draft that is
gone (issued, or no longer made by the run) loses its file, the rest are left alone.

``.<YYYY-MM>.fingerprints.parquet`` beside the folder (which holds only the drafts)
records the fingerprint each file was rendered from. It never claims more than is on
disk, whenever a run is killed:

1. ``begin``: the record loses the entries of every file about to change or go;
2. each changed document is written to a scratch file renamed over its old one (a
   reader, or a run killed mid-way, sees the old document or the new, never part of
   one), then the gone ones are removed;
3. ``finish``: everything is flushed to disk, then the record of every draft replaces
   the old one (atomically).

A run killed before 3 leaves some drafts new and some old, and the next run renders
again every file not recorded, so a re-run completes the folder."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.lake import SCRATCH_NAME, write_atomically

log = logging.getLogger(__name__)
RECORD = ".{}.fingerprints.parquet"  # beside the folder, named after it
SCHEMA = pa.schema([("reference", pa.string()), ("fingerprint", pa.string())])
SUFFIX = ".html"


@dataclass(frozen=True)
class FolderPlan:
    """What a run does to the folder: the drafts to write, the files to remove."""

    folder: Path
    fingerprints: dict[str, str]  # every draft of the run, by reference
    kept: dict[str, str]  # the recorded drafts whose file is there and unchanged
    changed: list[str]  # references to render
    gone: list[str]  # references whose file goes


def plan(folder: Path, fingerprints: dict[str, str]) -> FolderPlan:
    """Compare the run's drafts with the folder (listed once) and its record. The caller
    holds the folder's lock (``Lake.lock``), so scratch files there are a killed run's."""
    folder.mkdir(parents=True, exist_ok=True)
    for scratch in folder.parent.glob(f".{record(folder).name}.*.tmp"):
        scratch.unlink()  # a killed run's
    present = set()
    for entry in os.scandir(folder):
        if SCRATCH_NAME.fullmatch(entry.name):
            os.unlink(entry.path)  # a killed run's
        elif entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
            present.add(entry.name[:-len(SUFFIX)])
    recorded = _read_record(folder)
    kept = {reference: fingerprint for reference, fingerprint in recorded.items()
            if reference in present and fingerprints.get(reference) == fingerprint}
    return FolderPlan(folder, fingerprints, kept,
                      sorted(fingerprints.keys() - kept.keys()),
                      sorted(present - fingerprints.keys()))


def begin(plan: FolderPlan) -> None:
    """Forget, on disk, the fingerprints of the files about to change or go."""
    if plan.changed or plan.gone:
        _write_record(plan.folder, plan.kept)


def write_document(folder: Path, reference: str, html: str) -> None:
    """The document's file, whole: a scratch file renamed over the old one. Not flushed
    one by one (a few ms each, at 100,000 documents): ``finish`` flushes them all before
    recording them."""
    target = folder / f"{reference}{SUFFIX}"
    scratch = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        scratch.write_text(html, encoding="utf-8")
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)


def finish(plan: FolderPlan) -> None:
    """Remove the gone drafts' files, then record every draft as rendered."""
    for reference in plan.gone:
        (plan.folder / f"{reference}{SUFFIX}").unlink(missing_ok=True)
    if plan.changed or plan.gone or plan.kept != plan.fingerprints:
        os.sync()  # the documents on disk before the record says they are
        _write_record(plan.folder, plan.fingerprints)


def record(folder: Path) -> Path:
    """The file that records what ``folder``'s drafts were rendered from."""
    return folder.with_name(RECORD.format(folder.name))


def _read_record(folder: Path) -> dict[str, str]:
    path = record(folder)
    if not path.exists():
        return {}  # a folder written before drafts were kept in place: all render once
    try:
        rows = pq.read_table(path, schema=SCHEMA)
    except (pa.ArrowException, OSError) as error:
        log.warning("%s unreadable (%s): every draft of the folder is rendered again",
                    path, error)
        return {}
    return dict(zip(rows["reference"].to_pylist(), rows["fingerprint"].to_pylist(),
                    strict=True))


def _write_record(folder: Path, fingerprints: dict[str, str]) -> None:
    table = pa.table({"reference": pa.array(list(fingerprints), pa.string()),
                      "fingerprint": pa.array(list(fingerprints.values()), pa.string())})
    write_atomically(record(folder), lambda path: pq.write_table(table, path))
