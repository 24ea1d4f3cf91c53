"""Print one SHA-256 per lake table over its Parquet files, to show that a change leaves
the billing output byte for byte as it was.

    make demo && .venv/bin/python bench/lake_fingerprint.py data > before.txt
    (change the code)
    make demo && .venv/bin/python bench/lake_fingerprint.py data | diff before.txt -

The demo bills the last three complete months before today, so compare runs of the same
day. Tables stamped with the wall clock (``batches.committed_at``, ``issued_documents``,
``document_events``, ``payment_attempts``) differ between any two runs and are marked.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

CLOCK_STAMPED = {"batches", "issued_documents", "document_events", "payment_attempts"}


def fingerprints(lake: Path) -> dict[str, tuple[int, str]]:
    """table -> (files, SHA-256 over its files' paths and bytes in path order)."""
    result = {}
    for table in sorted(p for p in lake.iterdir() if p.is_dir()):
        digest, files = hashlib.sha256(), sorted(table.rglob("*.parquet"))
        for path in files:
            digest.update(str(path.relative_to(table)).encode() + b"\0" + path.read_bytes())
        result[table.name] = (len(files), digest.hexdigest())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="the data directory (its lake/ is read)")
    args = parser.parse_args()
    for table, (files, digest) in fingerprints(args.data_dir / "lake").items():
        mark = "  (clock-stamped)" if table in CLOCK_STAMPED else ""
        print(f"{table:24} {files:5} {digest}{mark}")


if __name__ == "__main__":
    main()
