import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.lake import Lake


def rows(values):
    return pa.table({"x": values})


def test_partition_write_is_byte_identical_for_the_same_rows(tmp_path):
    lake = Lake(tmp_path)
    first = lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3])).read_bytes()
    second = lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3])).read_bytes()
    assert first == second


def test_crash_mid_write_keeps_the_old_partition(tmp_path, monkeypatch):
    lake = Lake(tmp_path)
    path = lake.write_partition("t", "day", "2026-10-01", rows([1, 2, 3]))

    def crash(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        lake.write_partition("t", "day", "2026-10-01", rows([4, 5]))
    monkeypatch.undo()
    assert pq.read_table(path)["x"].to_pylist() == [1, 2, 3]
    assert [p.name for p in path.parent.iterdir()] == ["data.parquet"]


def test_missing_upstream_partition_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="billing_month=2026-10-01 of table 'usage'"):
        Lake(tmp_path).read_partition("usage", "billing_month", "2026-10-01")
