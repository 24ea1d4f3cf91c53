"""Iceberg exports: the scenario of test_pipeline.py billed for September and October, both
issued (two issuing runs), one invoice paid, four payment records and an amendment,
exported as Iceberg tables (a SQLite catalog in the destination) and read back with
pyiceberg, DuckDB and Spark. DuckDB's iceberg extension and Spark's Iceberg runtime jar
cannot be downloaded on this machine, so DuckDB and Spark read the data files the
table's current snapshot lists, as their Iceberg readers would. Then October is re-billed
with one more event and exported again; and an export to S3 (moto's server)."""

import shutil
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from pyiceberg import types as it
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table as IcebergTable

from assets.resources import OrbStore
from cli.export import export as export_command
from ingestion.amendments import record_amendment
from invoicing.documents import change_status
from invoicing.issuing import issue_month
from payments.ledger import Ledger
from pipelines import runner
from pipelines.definitions import build_definitions
from storage.duck import connect
from storage.exports import iceberg_export as iceberg
from storage.exports import lake_export as exports
from storage.exports.ddl import UnsupportedType
from storage.lake import Lake
from storage.tables import CREDIT_GRANTS, PUBLISHED_TABLES
from tests.scenario import COLUMNS, event, write_scenario
from tests.servers import BUCKET

SEPTEMBER, OCTOBER = date(2026, 9, 1), date(2026, 10, 1)
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# By hand (test_pipeline.py): New York pays 20.00 a month in arrears, calls are 0.50 each
# up to 10 a month and 0.10 beyond, tokens 0.001 each, rounded to the cent. September: one
# call (Sept 30, 23:59:59 EDT); October: 16 calls, 1225 tokens (1.225 -> 1.23). Tokyo's
# JPY invoices: 548 (Oct 15-31) and 1003 (the next month's fee in advance), test_exports.py.
TOTALS = {"ny-20261001-USD": Decimal("20.50"), "ny-20261101-USD": Decimal("26.83"),
          "tokyo-20261015-JPY": Decimal("548"), "tokyo-20261101-JPY": Decimal("1003")}
# One more completion in October: 1225 + 1234.567890123 tokens cost 2.459567890123,
# 2.46 on the invoice: 20.00 + 5.60 + 2.46.
EXTRA_TOKENS = Decimal("1234.567890123")
REBILLED_NY_OCTOBER = Decimal("28.06")


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("lake")
    write_scenario(root)
    store = OrbStore(data_dir=str(root), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [SEPTEMBER, OCTOBER],
                       dg.DagsterInstance.ephemeral())
    issue_month(connect(), store.lake, SEPTEMBER, NOW)
    issue_month(connect(), store.lake, OCTOBER, datetime(2026, 11, 2, 10, tzinfo=UTC))
    change_status(store.lake, "INV-000001", "paid", datetime(2026, 11, 3, tzinfo=UTC))
    ledger = Ledger(store.lake, "manual")
    at = datetime(2026, 11, 3, tzinfo=UTC)
    ledger.write("INV-000001", "collect", 1, "intent", at, "k1", "started",
                 amount=Decimal("20.50"), currency="USD")
    ledger.write("INV-000001", "collect", 1, "outcome", at, "k1", "paid", "pay-1",
                 Decimal("20.50"), "USD")
    ledger.write("INV-000003", "collect", 1, "intent", at, "k3", "started",
                 amount=Decimal("548"), currency="JPY")
    ledger.write("INV-000003", "collect", 1, "outcome", at, "k3", "failed",
                 amount=Decimal("548"), currency="JPY", detail="card declined",
                 next_retry_at=datetime(2026, 11, 6, tzinfo=UTC))
    record_amendment(store.lake, "tokyo", datetime(2026, 10, 31, 15, tzinfo=UTC),
                     datetime(2026, 11, 1, tzinfo=UTC), "sent twice", NOW, "tk-november")
    return store.lake


@pytest.fixture(scope="module")
def exported(lake, tmp_path_factory) -> tuple[iceberg.IcebergExport, SqlCatalog]:
    out = tmp_path_factory.mktemp("iceberg")
    result = iceberg.export_iceberg(lake, str(out))
    return result, iceberg.open_catalog(str(out))[0]


@pytest.fixture(scope="module")
def spark():
    # `make test` installs Java; a missing one is a failure, not a skipped test.
    assert shutil.which("java"), "Spark needs a Java runtime: apt-get install default-jre-headless"
    from pricing_sql.engine import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


def lake_rows(con, lake: Lake, table: str) -> list[tuple]:
    files = lake.all_files(table)
    if not files:
        return []
    return con.execute("SELECT * FROM read_parquet($files, hive_partitioning = true) "
                       "ORDER BY ALL", {"files": files}).fetchall()


def ordered(con, rows: pa.Table) -> list[tuple]:
    con.register("rows_", rows)
    return con.execute("SELECT * FROM rows_ ORDER BY ALL").fetchall()


def data_files(table: IcebergTable, snapshot_id: int | None = None) -> list[str]:
    """The local paths of the data files a snapshot (default: the current one) lists."""
    return sorted(task.file.file_path.removeprefix("file://")
                  for task in table.scan(snapshot_id=snapshot_id).plan_files())


def test_every_table_reads_back_the_same_with_pyiceberg_duckdb_and_spark(lake, exported, spark):
    result, catalog = exported
    assert [t.name for t in result.tables] == list(PUBLISHED_TABLES)
    con = connect()
    for entry in result.tables:
        table = catalog.load_table(("orb", entry.name))
        expected = lake_rows(con, lake, entry.name)
        by_pyiceberg = table.scan().to_arrow()
        assert ordered(con, by_pyiceberg) == expected, entry.name
        # Decimal('548') == 548.0: the values alone would not tell a double from a decimal.
        decimals = _decimals(iceberg.arrow_schema(entry.name))
        assert decimals == _decimals(by_pyiceberg.schema), entry.name
        assert entry.rows == len(expected), entry.name
        files = data_files(table)
        if not expected:  # e.g. credit_grants: the table exists, with its schema, empty
            assert files == [] and entry.snapshot_id is None, entry.name
            continue
        by_duckdb = con.execute("SELECT * FROM read_parquet($files) ORDER BY ALL",
                                {"files": files}).fetchall()
        assert by_duckdb == expected, entry.name
        by_spark = spark.read.option("recursiveFileLookup", "true").parquet(*files).toArrow()
        assert ordered(con, by_spark) == expected, entry.name
        assert _decimals(by_spark.schema) == decimals, entry.name
    empty = {e.name for e in result.tables if not e.rows}
    assert "credit_grants" in empty and not empty & {
        "events", "quarantine", "batches", "amendments", "usage", "line_items", "invoices",
        "issued_documents", "issued_lines", "document_events", "payment_attempts", "mrr"}


def _decimals(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(f.name, f.type) for f in schema if pa.types.is_decimal(f.type)]


def test_decimals_are_exact_in_every_reader(exported, spark):
    _, catalog = exported
    invoices = catalog.load_table("orb.invoices")
    assert invoices.schema().find_field("total").field_type == it.DecimalType(38, 4)
    by_pyiceberg = invoices.scan(selected_fields=("invoice_id", "total")).to_arrow()
    assert dict(zip(by_pyiceberg["invoice_id"].to_pylist(), by_pyiceberg["total"].to_pylist(),
                    strict=True)) == TOTALS
    files = data_files(invoices)
    by_duckdb = duckdb.execute("SELECT invoice_id, total, typeof(total) FROM "
                               "read_parquet($files)", {"files": files}).fetchall()
    assert {row[0]: row[1] for row in by_duckdb} == TOTALS
    assert {row[2] for row in by_duckdb} == {"DECIMAL(38,4)"}
    frame = spark.read.parquet(*files)
    assert frame.schema["total"].dataType.simpleString() == "decimal(38,4)"
    assert {row.invoice_id: row.total for row in frame.collect()} == TOTALS
    # Tokens: 1200 + 25 in October, a DECIMAL(38, 9) quantity; precise line amounts (38, 21).
    usage = catalog.load_table("orb.usage")
    assert usage.schema().find_field("quantity").field_type == it.DecimalType(38, 9)
    lines = catalog.load_table("orb.line_items").scan(
        row_filter="price_id == 'pro_tokens' AND billing_month == '2026-10-01'").to_arrow()
    assert lines.select(["quantity", "precise_amount", "amount"]).to_pylist() == [
        {"quantity": Decimal("1225.000000000"),
         "precise_amount": Decimal("1.225000000000000000000"), "amount": Decimal("1.2300")}]
    attempts = catalog.load_table("orb.payment_attempts")
    by_spark = spark.read.parquet(*data_files(attempts)).select("record_id", "amount").collect()
    assert {row.record_id: row.amount for row in by_spark} == {
        "INV-000001~collect~1~intent": Decimal("20.5000"),
        "INV-000001~collect~1~outcome": Decimal("20.5000"),
        "INV-000003~collect~1~intent": Decimal("548.0000"),
        "INV-000003~collect~1~outcome": Decimal("548.0000")}


def test_schemas_and_partitions_follow_the_declarations(exported):
    _, catalog = exported
    events = catalog.load_table("orb.events")
    assert [f.name for f in events.spec().fields] == ["event_date"]  # identity on the day
    assert str(events.spec().fields[0].transform) == "identity"
    assert events.schema().find_field("timestamp").field_type == it.TimestamptzType()
    assert events.schema().find_field("event_date").field_type == it.DateType()  # path-only
    usage = catalog.load_table("orb.usage")
    assert [f.name for f in usage.spec().fields] == ["billing_month"]
    assert usage.schema().find_field("grouping").field_type == it.ListType(
        usage.schema().find_field("grouping").field_type.element_id, it.StringType(),
        element_required=False)
    # An id key would be one Iceberg partition per row: a plain column instead.
    issued = catalog.load_table("orb.issued_documents")
    assert issued.spec().is_unpartitioned()
    assert issued.schema().column_names[-1] == "issue_run"  # only in the lake's paths
    assert issued.properties["comment"].startswith("issued invoices and credit notes")
    with pytest.raises(UnsupportedType, match="column 'key_hash'"):
        iceberg.iceberg_schema(pa.schema([("key_hash", pa.uint64())]))


def test_tables_of_many_small_files_are_compacted(lake, exported):
    """One data file per partition with rows, or per table when it is keyed by an id."""
    result, catalog = exported
    lake_files = {t: len(lake.all_files(t)) for t in PUBLISHED_TABLES}
    assert lake_files["payment_attempts"] == 4  # one record per file in the lake
    assert lake_files["issued_documents"] == 2  # one file per issuing run
    assert lake_files["document_events"] == 3  # two runs' 'issued' events, one payment
    for entry in result.tables:
        partitions = {value for value, (_, rows) in _partitions(lake, entry.name).items() if rows}
        expected = len(partitions) if entry.partitioned else min(len(partitions), 1)
        assert entry.data_files == expected, entry.name
        assert len(data_files(catalog.load_table(("orb", entry.name)))) == expected
    assert {e.name: e.data_files for e in result.tables if e.name in (
        "payment_attempts", "issued_documents", "document_events", "events")} == {
        "payment_attempts": 1, "issued_documents": 1, "document_events": 1,
        "events": len({Lake.partition_value(f) for f in lake.all_files("events")})}


def test_a_rebilled_month_replaces_only_its_partitions(lake, tmp_path):
    copy = Lake(shutil.copytree(lake.root, tmp_path / "lake"))
    out = str(tmp_path / "out")
    first = {t.name: t for t in iceberg.export_iceberg(copy, out).tables}
    before = {t: _partitions(copy, t) for t in PUBLISHED_TABLES}
    extra = event("ny-tok-3", "completion", "2026-10-07T00:00:00Z", "ny",
                  properties=f'{{"tokens": {EXTRA_TOKENS}}}')
    pq.write_table(pa.Table.from_pylist([extra], schema=pa.schema(
        [(name, pa.string()) for name in COLUMNS])), copy.landing / "batch-3.parquet")
    store = OrbStore(data_dir=str(copy.root), max_event_age_days=36500)
    runner.bill_months(build_definitions(store), [OCTOBER], dg.DagsterInstance.ephemeral())
    after = {t: _partitions(copy, t) for t in PUBLISHED_TABLES}

    second = {t.name: t for t in iceberg.export_iceberg(copy, out).tables}
    catalog = iceberg.open_catalog(out)[0]
    for name, entry in second.items():
        changed = tuple(sorted(v for v in after[name] if after[name][v] != before[name].get(v)))
        assert entry.written == changed and entry.removed == (), name
        assert "2026-09-01" not in entry.written, name
        table = catalog.load_table(("orb", name))
        if not any(after[name][v][1] or before[name].get(v, ((), 0))[1] for v in changed):
            # nothing changed, or only partitions without rows (a batch that rejected
            # nothing): no new snapshot
            assert entry.snapshot_id == first[name].snapshot_id, name
            continue
        snapshot = table.current_snapshot()  # one new snapshot, on the first export's
        assert snapshot.parent_snapshot_id == first[name].snapshot_id, name
        assert len(table.snapshots()) == (2 if first[name].snapshot_id else 1), name
        assert snapshot.summary["orb.partitions-written"] == str(len(changed)), name
        if entry.partitioned and first[name].snapshot_id:  # the others keep their files
            old, new = data_files(table, first[name].snapshot_id), data_files(table)
            assert [f for f in old if not _in(f, changed)] == [
                f for f in new if not _in(f, changed)], name
    assert second["usage"].written == ("2026-10-01",)
    assert second["invoices"].written == ("2026-10-01",)
    assert second["events"].written == ("2026-10-07",)
    assert len(second["batches"].written) == 1
    for unchanged in ("amendments", "payment_attempts", "issued_documents", "document_events"):
        assert second[unchanged].written == (), unchanged

    invoices = catalog.load_table("orb.invoices")
    now, then = (_totals(invoices), _totals(invoices, first["invoices"].snapshot_id))
    assert then == TOTALS  # time travel: the first export's snapshot, as it was
    assert now == {**TOTALS, "ny-20261101-USD": REBILLED_NY_OCTOBER}
    usage = catalog.load_table("orb.usage")
    tokens = "metric_id == 'tokens' AND billing_month == '2026-10-01'"
    assert usage.scan(row_filter=tokens).to_arrow()["quantity"].to_pylist() == [
        Decimal("1225") + EXTRA_TOKENS]
    assert usage.scan(row_filter=tokens, snapshot_id=first["usage"].snapshot_id).to_arrow()[
        "quantity"].to_pylist() == [Decimal("1225.000000000")]

    third = iceberg.export_iceberg(copy, out).tables  # nothing changed since: nothing written
    assert all(not t.written and t.snapshot_id == second[t.name].snapshot_id for t in third)


def _partitions(lake: Lake, table: str) -> dict[str, tuple[frozenset, int]]:
    """Each partition's files (name and bytes) and rows."""
    files: dict[str, set[tuple[str, bytes]]] = {}
    rows: dict[str, int] = {}
    for file in lake.all_files(table):
        value = Lake.partition_value(file)
        files.setdefault(value, set()).add((Path(file).name, Path(file).read_bytes()))
        rows[value] = rows.get(value, 0) + pq.read_metadata(file).num_rows
    return {value: (frozenset(found), rows[value]) for value, found in files.items()}


def _in(path: str, partitions: tuple[str, ...]) -> bool:
    return any(f"={value}/" in path for value in partitions)


def _totals(invoices: IcebergTable, snapshot_id: int | None = None) -> dict[str, Decimal]:
    rows = invoices.scan(selected_fields=("invoice_id", "total"),
                         snapshot_id=snapshot_id).to_arrow()
    return dict(zip(rows["invoice_id"].to_pylist(), rows["total"].to_pylist(), strict=True))


def test_a_table_that_is_not_the_lakes_is_refused(lake, tmp_path):
    out = tmp_path / "out"
    catalog = iceberg.open_catalog(str(out))[0]
    catalog.create_namespace("orb")
    catalog.create_table("orb.invoices", pa.schema([("invoice_id", pa.string()),
                                                    ("total", pa.float64())]))
    with pytest.raises(exports.ExportError, match=r"orb\.invoices in the catalog has columns "
                       r"total double .* the lake declares customer_id string, .*"
                       r"total decimal\(38, 4\)"):
        iceberg.export_iceberg(lake, str(out), tables=["invoices"])


def test_a_column_declared_after_a_file_was_written_is_null(tmp_path):
    """A lake file older than a column (the rows of a month billed before it was
    declared) exports it as null; a column that is not declared fails the export."""
    lake = Lake(tmp_path / "lake")
    grant = {"grant_id": "g1", "customer_id": "ny", "currency": "JPY", "amount": Decimal(548),
             "cost_basis": Decimal("1234.567890123"), "effective_date": date(2026, 10, 1)}
    older = CREDIT_GRANTS.remove(CREDIT_GRANTS.get_field_index("reason"))
    lake.write_partition("credit_grants", "grant_id", "g1",
                         pa.Table.from_pylist([grant], schema=older))
    result = iceberg.export_iceberg(lake, str(tmp_path / "out"), tables=["credit_grants"])
    assert result.tables[0].written == ("g1",)
    table = iceberg.open_catalog(str(tmp_path / "out"))[0].load_table("orb.credit_grants")
    assert table.scan().to_arrow().to_pylist() == [
        {**grant, "amount": Decimal("548.0000"), "expiry_date": None, "reason": None}]
    lake.write_partition("credit_grants", "grant_id", "g2", pa.Table.from_pylist(
        [{**grant, "grant_id": "g2", "reason": "", "bonus": 1}],
        schema=CREDIT_GRANTS.append(pa.field("bonus", pa.int64()))))
    with pytest.raises(exports.ExportError, match=r"grant_id=g2/data.parquet does not hold the "
                       r"columns credit_grants declares in storage/tables.py: undeclared "
                       r"columns bonus"):
        iceberg.export_iceberg(lake, str(tmp_path / "out"), tables=["credit_grants"])
    assert table.refresh().current_snapshot().snapshot_id == result.tables[0].snapshot_id


def test_a_file_changed_during_the_export_is_never_committed(lake, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "_sha256", lambda handle: "0" * 64)  # as if rewritten
    with pytest.raises(exports.ExportError, match="invoices/billing_month=2026-09-01/"
                       "data.parquet changed during the export"):
        iceberg.export_iceberg(lake, str(tmp_path), tables=["invoices"])
    table = iceberg.open_catalog(str(tmp_path))[0].load_table("orb.invoices")
    assert table.current_snapshot() is None and iceberg.FINGERPRINTS not in table.properties


def test_s3_export_with_a_local_catalog(lake, s3, tmp_path):
    url, uri = f"s3://{BUCKET}/iceberg", f"sqlite:///{tmp_path / 'catalog.db'}"
    with pytest.raises(exports.ExportError, match="needs a catalog URI: SQLite cannot live"):
        iceberg.export_iceberg(lake, url, tables=["invoices"])
    result = iceberg.export_iceberg(lake, url, tables=["invoices", "payment_attempts"],
                                    catalog_uri=uri)
    assert result.warehouse == f"s3://{BUCKET}/iceberg"
    assert all(t.metadata_location.startswith(f"s3://{BUCKET}/iceberg/orb/")
               for t in result.tables)
    catalog = iceberg.open_catalog(url, uri)[0]
    assert _totals(catalog.load_table("orb.invoices")) == TOTALS
    keys = boto3.client("s3", endpoint_url=s3, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        ).list_objects_v2(Bucket=BUCKET, Prefix="iceberg/orb/invoices/data/")
    assert sorted(k["Key"].split("/")[4] for k in keys["Contents"]) == [
        "billing_month=2026-09-01", "billing_month=2026-10-01"]
    again = iceberg.export_iceberg(lake, url, tables=["invoices", "payment_attempts"],
                                   catalog_uri=uri)
    assert [t.snapshot_id for t in again.tables] == [t.snapshot_id for t in result.tables]


def test_cli_exports_iceberg(lake, tmp_path):
    cli = CliRunner(env={"COLUMNS": "200"})
    args = ["--format", "iceberg", "--to", str(tmp_path), "--data-dir", str(lake.root),
            "--tables", "invoices,payment_attempts"]
    result = cli.invoke(export_command, args)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "┃" in line)
    assert [cell.strip() for cell in header.split("┃")[1:-1]] == [
        "table", "partitioned by", "written", "unchanged", "removed", "rows", "data files"]
    lines = [line.split("│")[1:-1] for line in result.output.splitlines() if "│" in line]
    assert [[cell.strip() for cell in line] for line in lines] == [
        ["orb.invoices", "billing_month", "2", "0", "0", "4", "2"],
        ["orb.payment_attempts", "(none; record_id is a column)", "4", "0", "0", "4", "1"]]
    assert f"sqlite:///{tmp_path}/catalog.db" in result.output
    again = cli.invoke(export_command, args)
    assert again.exit_code == 0 and "Unchanged since the last export" in again.output
    wrong = cli.invoke(export_command, ["--catalog-uri", "sqlite:///x.db", "--to", str(tmp_path),
                                        "--data-dir", str(lake.root)])
    assert wrong.exit_code == 2 and "--catalog-uri is for --format iceberg" in wrong.output
    no_catalog = cli.invoke(export_command, ["--format", "iceberg", "--to", "s3://b/x",
                                             "--data-dir", str(lake.root)])
    assert no_catalog.exit_code == 1 and "needs a catalog URI" in no_catalog.output
