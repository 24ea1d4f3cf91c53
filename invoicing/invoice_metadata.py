"""Invoice metadata, Orb's ``metadata`` on an invoice: free key/value pairs the API's
``PUT /invoices/{id}`` sets, a null value deleting its key and a null mapping clearing
them all (Orb's rules).

Metadata is not part of a document's content: an issued document never changes, so
each update is its own record (``invoice_metadata``, one file per update, written once),
and an invoice's metadata is its updates folded in order. It is keyed by the invoice's
reference (its computed id, ``DocumentHead.reference``), which it keeps when issued, so
metadata set on a draft stays with the issued invoice. What a document prints of it, its
custom fields, is the metadata at issue (``custom_fields``), frozen then with the document
(``document_details``); later updates change the API's metadata, never the document.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.lake import PARTITION_FILE, Lake
from storage.tables import INVOICE_METADATA as METADATA
from storage.tables import TABLES

KEY = TABLES["invoice_metadata"].key
MAX_KEYS = 50  # a document's custom fields stay a short list
MAX_LENGTH = 500


class MetadataRefused(ValueError):
    """An update that breaks a rule; nothing was written."""


def record_update(lake: Lake, reference: str, metadata: Mapping[str, str | None] | None,
                  at: datetime) -> dict[str, str]:
    """Apply an Orb ``metadata`` update to the invoice ``reference`` and return its
    metadata after it. ``None`` clears every key; a key set to ``None`` is deleted."""
    rows: list[dict[str, object]]
    if metadata is None:
        rows = [{"key": None, "value": None}]
    else:
        problems = [f"metadata.{key}: keys and values are at most {MAX_LENGTH} characters"
                    for key, value in metadata.items()
                    if not key or len(key) > MAX_LENGTH or len(value or "") > MAX_LENGTH]
        if problems:
            raise MetadataRefused("; ".join(problems))
        rows = [{"key": key, "value": value} for key, value in metadata.items()]
    with lake.lock("invoice_metadata"):  # the fold read and the update are one step
        after = _fold(current(lake, [reference]).get(reference, {}), rows)
        if len(after) > MAX_KEYS:
            raise MetadataRefused(f"metadata: at most {MAX_KEYS} keys per invoice, "
                                  f"not {len(after)}")
        # the update's sequence number: updates fold in this order, whatever the clock
        update = f"{len(lake.all_files('invoice_metadata')) + 1:012d}"
        lake.write_file("invoice_metadata", KEY, update, PARTITION_FILE, pa.Table.from_pylist(
            [{"update_id": update, "reference": reference, "updated_at": at, **row}
             for row in rows], schema=METADATA))
    return after


def _fold(metadata: dict[str, str], rows: list[dict[str, object]]) -> dict[str, str]:
    result = dict(metadata)
    for row in rows:
        key, value = row["key"], row["value"]
        if key is None:
            result.clear()
        elif value is None:
            result.pop(str(key), None)
        else:
            result[str(key)] = str(value)
    return result


def current(lake: Lake, references: Collection[str] | None = None) -> dict[str, dict[str, str]]:
    """The metadata of each invoice (of ``references`` only, when given) that has any
    update, as its updates in order leave it."""
    files = lake.all_files("invoice_metadata")
    if not files:
        return {}
    rows = pq.read_table(files, partitioning=None, schema=METADATA)
    if references is not None:
        rows = rows.filter(pc.is_in(rows["reference"], pa.array(list(references), pa.string())))
    result: dict[str, dict[str, str]] = {}
    for row in sorted(rows.to_pylist(), key=lambda r: r["update_id"]):
        result[row["reference"]] = _fold(result.get(row["reference"], {}), [row])
    return result


def custom_fields(lake: Lake, references: Collection[str],
                  ) -> dict[str, tuple[tuple[str, str], ...]]:
    """What each document prints as custom fields when issued: its metadata then."""
    return {reference: tuple(metadata.items())
            for reference, metadata in current(lake, references).items() if metadata}
