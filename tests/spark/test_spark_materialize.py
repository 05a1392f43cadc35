"""Materialization on Spark, beyond test_spark_store.py's: the latest row per key picked in
two steps (each read task, then after the shuffle) equals one pick over all rows, full ties
spread over many read tasks included, with the tasks reading Parquet themselves or Spark
reading it; the time check from the Parquet footers and its fallback to the exact
aggregate."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_spark_store import T0, UTC_US, H, _redis, data_source, data_store, user, view

from banquet import FeatureStore
from banquet.offline.spark import direct
from banquet.offline.spark import materialize as M
from test_historical import SPARK_TEST_CONF

pytestmark = [pytest.mark.spark, pytest.mark.redis]


def _store(root: Path, kind: str) -> FeatureStore:
    s = data_store(root, kind, _redis())
    s.apply([user, view(data_source(kind))])
    return s


def _online_rows(s: FeatureStore, keys: int) -> dict[str, Any]:
    """``s`` materialized over ``[T0 - H, T0 + 10 H]``, then its online ``f_int, f_str`` of
    keys ``0 .. keys - 1``; the project torn down after."""
    try:
        s.materialize(T0 - H, T0 + 10 * H)
        rows = [{"user_id": k} for k in range(keys)]
        return s.get_online_features(["v:f_int", "v:f_str"], rows).to_dict()
    finally:
        s.teardown()
        s.online_store.close()


@contextlib.contextmanager
def _split_bytes(size: str | None) -> Iterator[None]:
    """Read tasks of about ``size`` bytes of row groups (Spark's file splits and the direct
    read's alike); None: the session's settings."""
    from banquet.offline.spark.session import spark_session

    if size is None:
        yield
        return
    spark = spark_session(SPARK_TEST_CONF)
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    old = {k: spark.conf.get(k) for k in keys}
    for k in keys:
        spark.conf.set(k, size)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


@pytest.mark.parametrize(
    "read", ["direct_many_tasks", "direct_one_task", "jvm_many_tasks"], ids=str
)
def test_two_step_pick_equals_one_pick_with_ties_across_tasks(
    tmp_path: Path, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few keys, few distinct times: most keys' latest rows are full ties (same event and
    created time, or both null created) in different files and row groups, so different read
    tasks keep different candidates; the last in source order must win, as in-process. The
    same with the tasks reading the Parquet files themselves (direct.py: event times stored
    in ms, cast to µs as Spark does), split into many tasks or one (which writes without a
    shuffle), and with Spark's own read."""
    rng = np.random.default_rng(3)
    n, keys = 20_000, 300
    ts = T0.timestamp() * 1e6 + rng.integers(0, 3, n) * 3_600_000_000
    created = pa.array(ts.astype("int64"), pa.int64(), mask=rng.random(n) < 0.3).cast(UTC_US)
    table = pa.table(
        {
            "user_id": pa.array(rng.integers(0, keys, n), pa.int64()),
            "event_timestamp": pa.array(ts.astype("int64") // 1000, pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "created": created,
            "f_int": pa.array(np.arange(n), pa.int64()),
            "f_str": pa.array([f"s{i}" for i in range(n)]),
        }
    )
    (tmp_path / "data").mkdir()
    if read == "direct_one_task":  # one row group: one task sees every row
        pq.write_table(table, tmp_path / "data" / "all.parquet")
    for i, part in enumerate(range(0, n, n // 4) if read != "direct_one_task" else []):
        pq.write_table(
            table.slice(part, n // 4), tmp_path / "data" / f"part-{i}.parquet", row_group_size=1000
        )
    tasks: list[int] = []
    read_frame = direct.read_frame

    def counted(*args: Any, **kw: Any) -> Any:
        out = read_frame(*args, **kw)
        tasks.append(out.rdd.getNumPartitions())
        return out

    monkeypatch.setattr(direct, "read_frame", counted)
    if read.startswith("jvm"):
        monkeypatch.setattr(direct, "footers", lambda *a: None)
    results = []
    for kind in ("file", "spark"):
        with _split_bytes(None if read == "direct_one_task" else "8192"):
            results.append(_online_rows(_store(tmp_path, kind), keys))
    assert results[1] == results[0]
    assert all(v is not None for v in results[1]["f_int"])
    want = {"direct_many_tasks": "many", "direct_one_task": [1], "jvm_many_tasks": []}[read]
    assert tasks == want if want != "many" else len(tasks) == 1 and tasks[0] >= 10


def test_direct_tasks_cut_row_groups_like_spark_file_splits() -> None:
    """Consecutive row groups while the task's bytes plus the next stay within
    min(maxPartitionBytes, max(openCost, (bytes + files x openCost) / cores)), a file
    counting openCost more where a task starts reading it."""
    sizes = [(0, 10), (0, 10), (1, 50), (1, 5)]  # (file, bytes) per row group
    units = [direct.Unit("f", r, g, 100 * g, 100, b) for g, (r, b) in enumerate(sizes)]
    f = direct.Footers(units, [], None)

    def cut(max_split: int, cores: int) -> list[list[int]]:
        return [[u.group for u in t] for t in direct.tasks(f, max_split, 1, cores)]

    assert cut(1000, 1) == [[0, 1, 2, 3]]  # cap 77
    assert cut(25, 1) == [[0, 1], [2], [3]]
    assert cut(1000, 4) == [[0], [1], [2], [3]]  # cap 20
    assert cut(1000, 2) == [[0, 1], [2], [3]]  # cap 39


def test_direct_read_without_a_created_column_equals_the_file_store(tmp_path: Path) -> None:
    """No created column (CREATED all null in the tasks), an int32 column for an Int64
    feature, ties broken by source order: the online rows equal the file store's."""
    from banquet import FileSource, SparkSource

    rng = np.random.default_rng(5)
    n = 5_000
    ts = T0.timestamp() * 1e6 + rng.integers(0, 4, n) * 3_600_000_000
    (tmp_path / "data").mkdir()
    table = pa.table(
        {
            "user_id": pa.array(rng.integers(0, 200, n), pa.int64()),
            "event_timestamp": pa.array(ts.astype("int64"), pa.int64()).cast(UTC_US),
            "f_int": pa.array(np.arange(n), pa.int32()),
            "f_str": pa.array([f"s{i}" for i in range(n)]),
        }
    )
    for i in range(2):
        pq.write_table(table.slice(i * n // 2, n // 2), tmp_path / "data" / f"p{i}.parquet")
    results = []
    for kind, cls in (("file", FileSource), ("spark", SparkSource)):
        s = data_store(tmp_path, kind, _redis())
        s.apply([user, view(cls(name="src", path="data", timestamp_field="event_timestamp"))])
        results.append(_online_rows(s, 200))
    assert results[1] == results[0]
    assert sum(v is not None for v in results[1]["f_int"]) == 200


def test_a_hive_folder_column_is_read_by_spark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feature from a ``k=v`` folder name is in no file: the tasks cannot read it from the
    Parquet files, so Spark reads the source; the online rows equal the file store's."""
    from banquet import FileSource, SparkSource

    calls: list[int] = []
    read_frame = direct.read_frame

    def counted(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        return read_frame(*args, **kw)

    monkeypatch.setattr(direct, "read_frame", counted)
    for part in (3, 4):
        (tmp_path / "data" / f"part={part}").mkdir(parents=True)
        pq.write_table(
            pa.table(
                {
                    "user_id": pa.array([part, part + 10], pa.int64()),
                    "event_timestamp": pa.array([T0, T0 + H], UTC_US),
                    "f_str": ["a", "b"],
                }
            ),
            tmp_path / "data" / f"part={part}" / "x.parquet",
        )
    results = []
    for kind, cls in (("file", FileSource), ("spark", SparkSource)):
        src = cls(
            name="src",
            path="data",
            timestamp_field="event_timestamp",
            field_mapping={"part": "f_int"},
        )
        s = data_store(tmp_path, kind, _redis())
        s.apply([user, view(src)])
        results.append(_online_rows(s, 20))
    assert results[1] == results[0]
    assert [v for v in results[1]["f_int"] if v is not None] == [3, 4, 3, 4]
    assert calls == []


def test_footer_times_bound_the_window_and_a_failing_bound_falls_back(tmp_path: Path) -> None:
    """A row dated 2200 is outside the window: the footers' bound fails the future check, the
    exact aggregate over the window passes, and the window's rows are written."""
    far = datetime(2200, 1, 1, tzinfo=timezone.utc)
    (tmp_path / "data").mkdir()
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2, 3], pa.int64()),
                "event_timestamp": pa.array([T0, T0 + H, far], UTC_US),
                "created": pa.array([None, T0, T0], UTC_US),
                "f_int": pa.array([10, 20, 30], pa.int64()),
                "f_str": ["a", "b", "c"],
            }
        ),
        tmp_path / "data" / "x.parquet",
    )
    s = _store(tmp_path, "spark")
    try:
        bounds = M.footer_times(s.offline_store, s.get_feature_view("v"))  # type: ignore[arg-type]
        assert bounds is not None
        event, created = bounds
        assert event.to_pylist() == [T0, far]
        assert created is not None and created.to_pylist() == [T0, T0]
        s.materialize(T0 - H, T0 + 2 * H)
        got = s.get_online_features(["v:f_int"], [{"user_id": k} for k in (1, 2, 3)]).to_dict()
        assert got["f_int"] == [10, 20, None]
    finally:
        s.teardown()
        s.online_store.close()
