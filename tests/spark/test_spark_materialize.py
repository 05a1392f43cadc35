"""Materialization on Spark, beyond test_spark_store.py's: the latest row per key picked in
two steps (each read task, then after the shuffle) equals one pick over all rows, full ties
spread over many read tasks included; the time check from the Parquet footers and its
fallback to the exact aggregate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_spark_store import T0, UTC_US, H, _redis, data_source, data_store, user, view

from banquet import FeatureStore
from banquet.offline.spark import materialize as M
from test_historical import SPARK_TEST_CONF

pytestmark = [pytest.mark.spark, pytest.mark.redis]


def _store(root: Path, kind: str) -> FeatureStore:
    s = data_store(root, kind, _redis())
    s.apply([user, view(data_source(kind))])
    return s


@pytest.fixture
def small_read_tasks() -> Iterator[None]:
    """Spark splits the files into many read tasks (one per few row groups)."""
    from banquet.offline.spark.session import spark_session

    spark = spark_session(SPARK_TEST_CONF)
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    old = {k: spark.conf.get(k) for k in keys}
    for k in keys:
        spark.conf.set(k, "8192")
    yield
    for k, v in old.items():
        if v is None:
            spark.conf.unset(k)
        else:
            spark.conf.set(k, v)


def test_two_step_pick_equals_one_pick_with_ties_across_tasks(
    tmp_path: Path, small_read_tasks: None
) -> None:
    """Few keys, few distinct times: most keys' latest rows are full ties (same event and
    created time, or both null created) in different files and row groups, so different read
    tasks keep different candidates; the last in source order must win, as in-process."""
    rng = np.random.default_rng(3)
    n, keys = 20_000, 300
    ts = T0.timestamp() * 1e6 + rng.integers(0, 3, n) * 3_600_000_000
    created = pa.array(ts.astype("int64"), pa.int64(), mask=rng.random(n) < 0.3).cast(UTC_US)
    table = pa.table(
        {
            "user_id": pa.array(rng.integers(0, keys, n), pa.int64()),
            "event_timestamp": pa.array(ts.astype("int64"), pa.int64()).cast(UTC_US),
            "created": created,
            "f_int": pa.array(np.arange(n), pa.int64()),
            "f_str": pa.array([f"s{i}" for i in range(n)]),
        }
    )
    (tmp_path / "data").mkdir()
    for i, part in enumerate(range(0, n, n // 4)):
        pq.write_table(
            table.slice(part, n // 4), tmp_path / "data" / f"part-{i}.parquet", row_group_size=1000
        )
    results = []
    for kind in ("file", "spark"):
        s = _store(tmp_path, kind)
        try:
            s.materialize(T0 - H, T0 + 10 * H)
            rows = [{"user_id": k} for k in range(keys)]
            results.append(s.get_online_features(["v:f_int", "v:f_str"], rows).to_dict())
        finally:
            s.teardown()
            s.online_store.close()
    assert results[1] == results[0]
    assert all(v is not None for v in results[1]["f_int"])


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
