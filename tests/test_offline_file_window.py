"""The file offline store's windowed read (the Rust scan: row groups whose Parquet statistics put
every timestamp inside the window skip the row filter, those outside are not read; see
rust/core/src/scan/tests.rs) is exactly pyarrow's filtered read (same rows, same order),
whatever mix of inside, straddling and outside files and units."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from banquet import FeatureStore
from banquet.materialize import to_us
from banquet.sources import FileSource

UTC = timezone.utc
T0 = datetime(2024, 5, 1, tzinfo=UTC)
START, END = T0, T0 + timedelta(days=10)


def _file(path: Path, days: list[float | None], unit: str = "us") -> None:
    ts = [None if d is None else T0 + timedelta(days=d) for d in days]
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(range(len(days)), pa.int64()),
                "event_timestamp": pa.array(ts, pa.timestamp(unit, tz="UTC")),
                "v": pa.array([float(i) for i in range(len(days))]),
            }
        ),
        path,
    )


def _reference(path: Path, lo: datetime, hi: datetime) -> pa.Table:
    """The plain filtered scan, the behaviour the fast path must match."""
    dataset = ds.dataset(str(path), format="parquet")
    t = dataset.schema.field("event_timestamp").type
    c = ds.field("event_timestamp")
    cond = (c >= pa.scalar(lo).cast(t)) & (c <= pa.scalar(hi).cast(t))
    return dataset.to_table(columns=["user_id", "event_timestamp", "v"], filter=cond)


def test_window_read_equals_filtered_scan(tmp_path: Path, tmp_repo: Callable[..., Path]) -> None:
    src = tmp_path / "events"
    src.mkdir()
    _file(src / "a.parquet", [1, 2, 9.5])  # inside: read without the filter
    _file(src / "b.parquet", [-3, 0, 5, 10, 11])  # straddles both edges
    _file(src / "c.parquet", [4, None, 6])  # a null timestamp: the filter drops it
    _file(src / "d.parquet", [-9, -8])  # outside
    _file(src / "e.parquet", [3, 4])  # inside again, after filtered files
    _file(src / "f.parquet", [2, 3], unit="ms")  # another unit than the dataset's
    store = FeatureStore(repo_path=tmp_repo())
    source = FileSource(name="events", path=str(src), timestamp_field="event_timestamp")
    cols = ["user_id", "event_timestamp", "v"]
    for lo, hi in [(START, END), (START - timedelta(days=30), END + timedelta(days=30))]:
        got = store.offline_store.read(source, cols, to_us(lo), to_us(hi))
        want = _reference(src, lo, hi)
        assert got.equals(want), (lo, hi)
    assert store.offline_store.read(source, cols, to_us(START), to_us(END)).num_rows == 12


def test_single_file_inside_and_straddling(tmp_path: Path, tmp_repo: Callable[..., Path]) -> None:
    path = tmp_path / "one.parquet"
    _file(path, [0.5, 3, 7])
    store = FeatureStore(repo_path=tmp_repo())
    source = FileSource(name="one", path=str(path), timestamp_field="event_timestamp")
    cols = ["user_id", "event_timestamp", "v"]
    inside = store.offline_store.read(source, cols, to_us(START), to_us(END))
    assert inside.equals(_reference(path, START, END))
    assert inside.num_rows == 3
    cut = store.offline_store.read(source, cols, to_us(START + timedelta(days=1)), to_us(END))
    assert cut.equals(_reference(path, START + timedelta(days=1), END))
    assert cut.column("user_id").to_pylist() == [1, 2]
