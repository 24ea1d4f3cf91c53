"""Draft documents kept current in place (reports/draft_folder.py): a re-run rewrites only
the drafts whose content changed, removes those gone, and a render killed at any of its
renames leaves whole documents, each the old or the new, which a re-run completes.

The scenario is tests/scenario.py's October, billed by the ``billed`` fixture: three
drafts, New York's ny-20261101-USD ($26.83, worked out in tests/test_pipeline.py) and
Tokyo's tokyo-20261015-JPY (548 yen) and tokyo-20261101-JPY (1003 yen)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from babel.numbers import format_currency, format_decimal

from billing.catalog import Catalog
from invoicing.issuing import issue_month
from pipelines import runner
from reports import draft_folder
from reports.render import environment
from state import StateStore, UpdateCustomer
from storage.duck import connect
from storage.lake import SCRATCH_NAME
from tests.killed_render import render
from tests.killed_run import KILLED
from tests.pdf_pages import page_texts
from tests.scenario import OCTOBER, event

NY, TOKYO_15, TOKYO_1 = "ny-20261101-USD", "tokyo-20261015-JPY", "tokyo-20261101-JPY"
DRAFTS = sorted([NY, TOKYO_15, TOKYO_1])  # the order they are rendered in
ROOT = Path(__file__).resolve().parent.parent


def _folder(store) -> Path:
    return store.lake.reports / "invoices" / "2026-10"


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Each draft file's inode and modification time: a rename over it changes both."""
    return {path.stem: (path.stat().st_ino, path.stat().st_mtime_ns)
            for path in folder.glob("*.html")}


def test_an_unchanged_draft_is_kept_and_a_changed_one_rewritten(billed):
    store, defs, instance = billed
    folder = _folder(store)
    before = _files(folder)
    assert sorted(before) == DRAFTS
    assert '<td class="num">$26.83</td>' in (folder / f"{NY}.html").read_text()
    # A late call for New York on Oct 20: 17 calls, 10 x 0.50 + 7 x 0.10 = 5.70 (was
    # 5.60), so its invoice is 20.00 + 5.70 + 1.23 = 26.93. Tokyo's do not change.
    late = event("ny-late-call", "api_request", "2026-10-20T12:00:00Z", "ny")
    pq.write_table(pa.Table.from_pylist([late]), store.lake.root / "landing" / "late.parquet")
    runner.bill_months(defs, [OCTOBER], instance)
    after = _files(folder)
    assert sorted(after) == DRAFTS
    assert after[TOKYO_15] == before[TOKYO_15] and after[TOKYO_1] == before[TOKYO_1]
    assert after[NY][0] != before[NY][0]
    assert '<td class="num">$26.93</td>' in (folder / f"{NY}.html").read_text()
    # The same day again, nothing changed: nothing is written.
    written = render(store.lake.root, store.issuer)
    assert (written.documents, written.rendered, written.removed) == (3, 0, 0)
    assert _files(folder) == after


def test_a_customers_new_billing_address_rewrites_only_its_drafts(billed):
    store, defs, instance = billed
    folder = _folder(store)
    before = _files(folder)
    with StateStore.open(store.state_store_url) as state:
        state.apply([UpdateCustomer("ny", {"billing_address": {
            "line1": "1 Broadway", "city": "New York", "state": "NY", "postal_code": "10004",
            "country": "US"}, "tax_id": {"country": "US", "type": "us_ein",
                                         "value": "98-7654321"}}, "test")], Catalog())
    runner.bill_months(defs, [OCTOBER], instance)  # a new snapshot holds the address
    after = _files(folder)
    assert after[TOKYO_15] == before[TOKYO_15] and after[TOKYO_1] == before[TOKYO_1]
    assert after[NY][0] != before[NY][0]
    html = (folder / f"{NY}.html").read_text()
    (page,) = page_texts(html)  # each a line of its own on the page
    assert "1 Broadway" in page and "New York, NY 10004" in page
    assert "EIN 98-7654321" in page and '<body class="letter">' in html


def test_an_issued_invoices_draft_is_removed(billed):
    store, _, _ = billed
    folder = _folder(store)
    before = _files(folder)
    issued = issue_month(connect(), store.lake, OCTOBER, datetime(2026, 11, 2, 9, tzinfo=UTC),
                         {"tokyo"})
    assert sorted(draft.head.reference for _, draft in issued) == [TOKYO_15, TOKYO_1]
    written = render(store.lake.root, store.issuer)
    # Tokyo's two invoices are issued, so no longer drafts; New York's is kept as it was.
    assert (written.documents, written.rendered, written.removed) == (1, 0, 2)
    assert _files(folder) == {NY: before[NY]}


def _scratch(folder: Path) -> list[str]:
    """Where scratch files are: in the drafts' folder, beside it (the record's)."""
    return ([place for place, where in (("folder", folder), ("beside", folder.parent))
             if any(SCRATCH_NAME.fullmatch(p.name) for p in where.iterdir())])


def _killed_renders(runs: list[tuple[Path, int]], issuer: str, scratch: Path) -> list[int]:
    plan_file = scratch / "plan.json"
    plan_file.write_text(json.dumps({"issuer": issuer, "runs": [
        {"data_dir": str(data_dir), "kill_at": kill_at} for data_dir, kill_at in runs]}))
    done = subprocess.run([sys.executable, "-m", "tests.killed_render", str(plan_file)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return [run["status"] for run in json.loads(plan_file.read_text())["runs"]]


def test_a_killed_render_leaves_whole_documents_and_a_rerun_completes_them(billed, tmp_path):
    store, _, _ = billed
    root = store.lake.root
    old = {path.stem: path.read_text() for path in _folder(store).glob("*.html")}
    # A new issuer changes every draft. The render renames 5 files into place: the
    # record without the three drafts about to change (0), the three drafts in reference
    # order (1-3), the record of all three (4); -1 runs it whole.
    runs = [(tmp_path / f"killed-{kill_at}", kill_at) for kill_at in (-1, 0, 1, 2, 3, 4)]
    for data_dir, _ in runs:
        shutil.copytree(root, data_dir)
    issuer = "Renamed Cloud, Inc."
    assert _killed_renders(runs, issuer, tmp_path) == [0] + [KILLED] * 5
    whole = runs[0][0] / "reports" / "invoices" / "2026-10"
    new = {path.stem: path.read_text() for path in whole.glob("*.html")}
    assert sorted(new) == DRAFTS and all(issuer in new[name] and issuer not in old[name]
                                         for name in DRAFTS)
    for data_dir, kill_at in runs[1:]:
        folder = data_dir / "reports" / "invoices" / "2026-10"
        texts = {path.stem: path.read_text() for path in folder.glob("*.html")}
        # killed before rename N: the drafts renamed before it (N - 1 of them, at most 3)
        # are new, the others old; nothing is half written
        renamed = DRAFTS[:min(max(kill_at - 1, 0), 3)]
        assert texts == {name: new[name] if name in renamed else old[name] for name in DRAFTS}
        # the killed rename's scratch file is left, hidden: a draft's in the folder, the
        # record's beside it
        assert _scratch(folder) == (["folder"] if 1 <= kill_at <= 3 else ["beside"])
        # The record never claims a draft renamed after it: all three are rendered again.
        written = render(data_dir, issuer)
        assert (written.documents, written.rendered, written.removed) == (3, 3, 0)
        assert {path.stem: path.read_text() for path in folder.glob("*.html")} == new
        assert _scratch(folder) == []
        again = render(data_dir, issuer)
        assert (again.rendered, again.removed) == (0, 0)


def test_a_draft_missing_or_unrecorded_is_rendered_again(billed):
    store, _, _ = billed
    folder = _folder(store)
    (folder / f"{NY}.html").unlink()
    written = render(store.lake.root, store.issuer)
    assert (written.documents, written.rendered, written.removed) == (3, 1, 0)
    draft_folder.record(folder).unlink()  # a folder written before drafts were kept
    written = render(store.lake.root, store.issuer)
    assert (written.documents, written.rendered, written.removed) == (3, 3, 0)


def test_remembered_formats_are_babels():
    """The documents' filters remember what they formatted by the amount's text, so that
    amounts equal in value but not in exponent still print as Babel prints each."""
    env = environment()
    cases = [("rate", Decimal("0.50"), "USD"), ("rate", Decimal("0.5"), "USD"),
             ("rate", Decimal("0.500000"), "USD"), ("money", Decimal("1234.5"), "USD"),
             ("money", Decimal("-16.00"), "USD"), ("money", Decimal("1003"), "JPY"),
             ("money", Decimal("548.0"), "JPY")]
    for _ in range(2):  # the second time from memory
        for name, amount, currency in cases:
            expected = (format_currency(amount, currency, locale="en_US") if name == "money"
                        else format_currency(amount.normalize(), currency, locale="en_US",
                                             decimal_quantization=False))
            assert env.filters[name](amount, currency) == expected
    # by hand: a rate keeps its significant digits, money its currency's minor unit
    assert env.filters["rate"](Decimal("0.000025"), "USD") == "$0.000025"
    assert env.filters["money"](Decimal("1234.5"), "USD") == "$1,234.50"
    assert env.filters["money"](Decimal("548"), "JPY") == "¥548"
    assert env.filters["quantity"](Decimal("1500.000")) == format_decimal(
        Decimal("1500"), locale="en_US", decimal_quantization=False) == "1,500"
