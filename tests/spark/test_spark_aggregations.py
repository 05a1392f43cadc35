"""Windowed aggregations on the Spark offline store (issue #18 on Spark, issue #15): the
Spark store's ``get_historical_features`` equals the file store's for every aggregate
function on data with ties, nulls, empty windows, hopping and sliding windows, string and
multi-column keys, hot keys split by time, a Spark entity frame; one case on the standalone
cluster (in a subprocess: this run holds a local[2] SparkContext). Run as a script, this file
is that subprocess."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from cluster_support import master_url, run_job  # noqa: E402

from banquet import (  # noqa: E402
    BatchFeatureView,
    Entity,
    FeatureStore,
    Field,
    FileSource,
    RepoConfig,
    SparkSource,
)
from banquet.aggregation import Aggregation  # noqa: E402
from banquet.errors import ResourceExhausted  # noqa: E402
from banquet.offline.spark import join as spark_join  # noqa: E402
from banquet.types import Float64, Int32, String  # noqa: E402
from test_historical import SPARK_TEST_CONF  # noqa: E402
from test_window_aggregations import ALL_AGGS, H_US, T0, T0_US, USER, UTC_US, H  # noqa: E402

pytestmark = [pytest.mark.spark]

REGION = Entity(name="region", join_keys=["region"])
# ALL_AGGS (every function over a float and a string column, sliding and hopping windows)
# plus an Int32 column: exact integer sum, min/max/last in the column's own type
AGGS = [
    *ALL_AGGS,
    Aggregation(column="n", function="sum", time_window=6 * H, slide_interval=2 * H),
    Aggregation(column="n", function="min", time_window=4 * H),
    Aggregation(column="n", function="max", time_window=24 * H, slide_interval=3 * H),
    Aggregation(column="n", function="last", time_window=2 * H, slide_interval=H),
    Aggregation(column="n", function="count", time_window=H, name="n_1h"),
]
SCHEMA = [
    Field(name="amount", dtype=Float64),
    Field(name="merchant", dtype=String),
    Field(name="n", dtype=Int32),
]


def write_rows(root: Path, n: int, n_keys: int, seed: int) -> None:
    """Rows on a quarter-hour grid (many ties, also in the created time), ~10% nulls in each
    value column; key 0 holds a third of the rows (a hot key when the threshold is low)."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_keys, n)
    user[rng.random(n) < 0.33] = 0
    ts = T0_US + rng.integers(0, 48, n) * (H_US // 4)
    created = ts + rng.integers(0, 3, n) * (H_US // 4)

    def nulls(values: list[Any]) -> list[Any]:
        return [None if rng.random() < 0.1 else v for v in values]

    table = pa.table(
        {
            "user_id": pa.array(user, pa.int64()),
            "region": pa.array([f"r{u % 3}" for u in user], pa.string()),
            "ts": pa.array(ts, pa.int64()).cast(UTC_US),
            "created": pa.array(nulls(created.tolist()), pa.int64()).cast(UTC_US),
            "amount": pa.array(
                nulls([round(float(x), 3) for x in rng.normal(size=n)]), pa.float64()
            ),
            "merchant": pa.array(nulls([f"m{x}" for x in rng.integers(0, 9, n)]), pa.string()),
            "n": pa.array(nulls([int(x) for x in rng.integers(-50, 50, n)]), pa.int32()),
        }
    )
    (root / "tx").mkdir(exist_ok=True)
    half = n // 2  # two files: source order spans files as on a real folder
    pq.write_table(table.slice(0, half), root / "tx" / "part-0.parquet")
    pq.write_table(table.slice(half), root / "tx" / "part-1.parquet")


def entity_rows(n: int, n_keys: int, seed: int, multi: bool) -> pa.Table:
    """Entity rows before, inside and after the data (empty windows), keys absent from the
    source (n_keys, n_keys + 1), ties with the feature rows' instants."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, n_keys + 2, n)
    cols: dict[str, Any] = {"user_id": pa.array(user, pa.int64())}
    if multi:  # a third of the pairs do not exist in the source (another region)
        cols["region"] = pa.array([f"r{(u + (i % 3 == 0)) % 3}" for i, u in enumerate(user)])
    cols["event_timestamp"] = pa.array(
        T0_US + rng.integers(-4, 60, n) * (H_US // 4), pa.int64()
    ).cast(UTC_US)
    return pa.table(cols)


def open_store(
    root: Path, kind: str, conf: dict[str, str] | None = None, base: dict[str, str] | None = None
) -> FeatureStore:
    """The test repo's store on the file store or on Spark (``base`` conf, default the test
    run's local[2] one, updated by ``conf``)."""
    off: dict[str, Any] = {"type": "file"}
    if kind == "spark":
        base = SPARK_TEST_CONF if base is None else base
        off = {"type": "spark", "spark_conf": {**base, **(conf or {})}}
    cfg = RepoConfig.from_dict(
        {
            "project": "sparkagg",
            "registry": str(root / f"registry-{kind}.db"),
            "online_store": {"type": "sqlite", "path": str(root / f"online-{kind}.db")},
            "offline_store": off,
        },
        repo_path=root,
    )
    return FeatureStore(config=cfg)


def agg_view(kind: str, multi: bool, aggs: list[Aggregation] = AGGS) -> BatchFeatureView:
    cls: Any = FileSource if kind == "file" else SparkSource
    src = cls(name="tx", path="tx", timestamp_field="ts", created_timestamp_column="created")
    return BatchFeatureView(
        name="tx_agg",
        entities=[REGION, USER] if multi else [USER],
        source=src,
        schema=[f for f in SCHEMA if f.name in {a.column for a in aggs}],
        aggregations=aggs,
        online=False,
    )


def both(
    root: Path,
    entity: Any,
    multi: bool,
    conf: dict[str, str] | None = None,
    aggs: list[Aggregation] = AGGS,
    full: bool = True,
) -> tuple[pa.Table, pa.Table]:
    """The same request on the file store and on Spark."""
    outs = []
    refs = [f"tx_agg:{a.feature_name}" for a in aggs]
    for kind in ("file", "spark"):
        s = open_store(root, kind, conf)
        s.apply([USER, REGION, agg_view(kind, multi, aggs)])
        ent = entity
        if kind == "spark" and callable(entity):
            ent = entity(s)
        elif callable(entity):
            ent = entity(None)
        outs.append(s.get_historical_features(ent, refs, full_feature_names=full).to_arrow())
    return outs[0], outs[1]


@pytest.mark.parametrize("multi", [False, True], ids=["int-key", "string+int-keys"])
def test_every_function_equals_the_file_store(tmp_path: Path, multi: bool) -> None:
    write_rows(tmp_path, 4000, 30, seed=1)
    ent = entity_rows(900, 30, seed=2, multi=multi)
    file, spark = both(tmp_path, ent, multi, conf={"banquet.hot_key_rows": "0"})
    assert spark.column_names == file.column_names
    assert spark.schema == file.schema  # names, types (Int32 min/max/last, Int64 counts)
    assert spark.equals(file)
    counts = spark.column("tx_agg__count_amount_7200s")
    assert counts.null_count == 0 and 0 in counts.to_pylist()  # empty windows count 0
    assert spark.column("tx_agg__mean_amount_604800s").null_count > 0  # ... others are null
    assert spark.num_rows == ent.num_rows


def test_hot_keys_split_by_time_equal_the_file_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key 0 holds a third of the rows: with a low threshold it is cut into time buckets, each
    reading the widest window's rows before its start (a 7-day mean spans every bucket)."""
    split: list[int] = []
    real = spark_join.hot_key_buckets

    def spy(*a: Any) -> Any:
        got = real(*a)
        split.append(0 if got is None else got.count())
        return got

    monkeypatch.setattr(spark_join, "hot_key_buckets", spy)
    write_rows(tmp_path, 6000, 20, seed=3)
    ent = entity_rows(1200, 20, seed=4, multi=False)
    file, spark = both(tmp_path, ent, False, conf={"banquet.hot_key_rows": "400"})
    assert split and split[0] > 2, split  # the hot key was split
    assert spark.equals(file)


def test_spark_entity_frame_and_to_spark_df(tmp_path: Path) -> None:
    write_rows(tmp_path, 1500, 12, seed=5)
    ent = entity_rows(300, 12, seed=6, multi=True)
    aggs = AGGS[:4] + AGGS[-3:]
    refs = [f"tx_agg:{a.feature_name}" for a in aggs]
    file = open_store(tmp_path, "file")
    file.apply([USER, REGION, agg_view("file", True, aggs)])
    want = file.get_historical_features(ent, refs).to_arrow()
    s = open_store(tmp_path, "spark")
    s.apply([USER, REGION, agg_view("spark", True, aggs)])
    frame = s.offline_store.spark.createDataFrame(ent)  # type: ignore[attr-defined]
    job = s.get_historical_features(frame, refs)
    got = job.to_spark_df().toArrow()  # type: ignore[attr-defined]
    for a in aggs:
        name = a.feature_name
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    assert got.column("user_id").equals(want.column("user_id"))  # entity rows in input order


def test_no_entity_time_in_reach_gives_empty_windows(tmp_path: Path) -> None:
    write_rows(tmp_path, 200, 5, seed=7)
    ent = pa.table(
        {
            "user_id": pa.array([0, 1, 2], pa.int64()),
            "event_timestamp": pa.array([T0_US - 30 * 24 * H_US] * 3, pa.int64()).cast(UTC_US),
        }
    )
    file, spark = both(tmp_path, ent, False)
    assert spark.equals(file)
    assert spark.column("tx_agg__count_amount_7200s").to_pylist() == [0, 0, 0]
    assert spark.column("tx_agg__sum_amount_86400s").to_pylist() == [None, None, None]


def test_null_entity_key_gets_nulls(tmp_path: Path) -> None:
    write_rows(tmp_path, 300, 5, seed=7)
    at = pa.array([T0_US + 10 * H_US] * 3, pa.int64()).cast(UTC_US)
    ent = pa.table({"user_id": pa.array([0, None, 2], pa.int64()), "event_timestamp": at})
    file, spark = both(tmp_path, ent, False)
    assert spark.equals(file)
    counts = spark.column("tx_agg__count_amount_7200s").to_pylist()
    assert counts[1] is None and counts[0] and counts[2]  # as the plain join: nulls


# --- online tiles: materialized from the Spark read on the driver ---------------------------

ONLINE_AGGS = [a for a in AGGS if a.slide_us]  # online views need a slide_interval


def materialized(root: Path, kind: str, conf: dict[str, str] | None = None) -> FeatureStore:
    s = open_store(root, kind, conf)
    v = agg_view(kind, False, ONLINE_AGGS)
    v.online = True
    s.apply([USER, REGION, v])  # SQLite is allowed: the driver writes the tiles
    s.materialize(T0 - 2 * H, T0 + 30 * H)
    return s


def test_materialized_tiles_equal_the_file_stores(tmp_path: Path) -> None:
    from banquet import _core
    from banquet.online import tiles

    write_rows(tmp_path, 2000, 10, seed=10)
    keys = _core.serialize_entity_keys(["user_id"], [pa.array(range(12), pa.int64())])
    stores = [materialized(tmp_path, kind) for kind in ("file", "spark")]
    for at in (T0_US + 5 * H_US + 1, T0_US + 13 * H_US, T0_US + 30 * H_US):
        file, spark = (
            tiles.read_at(s, s.get_feature_view("tx_agg"), keys.to_pylist(), at) for s in stores
        )
        assert spark == file
        assert any(v is not None for v in spark[1][0])  # the windows hold rows


def test_materialize_past_driver_rows_is_refused_before_writing(tmp_path: Path) -> None:
    write_rows(tmp_path, 500, 5, seed=11)
    with pytest.raises(ResourceExhausted, match="banquet.driver_rows = 100; materialize"):
        materialized(tmp_path, "spark", {"banquet.driver_rows": "100"})
    from banquet import _core
    from banquet.online import tiles

    s = open_store(tmp_path, "spark")
    keys = _core.serialize_entity_keys(["user_id"], [pa.array(range(5), pa.int64())])
    stamps, _ = tiles.read_at(s, s.get_feature_view("tx_agg"), keys.to_pylist(), T0_US)
    assert stamps == [None] * 5  # nothing was written


# --- the standalone cluster ----------------------------------------------------------------


@pytest.mark.slow
def test_cluster_equals_the_file_store(tmp_path: Path) -> None:
    got, _ = run_job([__file__, str(tmp_path), master_url()])
    assert got["rows"] == got["entity_rows"]
    assert got["equal"], "the cluster's result differs from the file store's"


def _cluster_main(root: Path, master: str) -> None:
    conf = {
        "spark.master": master,
        "spark.pyspark.python": sys.executable,
        # the executors import banquet from this tree, as the driver does
        "spark.executorEnv.PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "spark.executor.memory": "512m",
        "spark.executor.cores": "1",
        "spark.cores.max": "2",
        "spark.sql.shuffle.partitions": "4",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "banquet.hot_key_rows": "500",  # the hot key is split on the cluster too
    }
    write_rows(root, 3000, 25, seed=8)
    ent = entity_rows(600, 25, seed=9, multi=True)
    outs = []
    refs = [f"tx_agg:{a.feature_name}" for a in AGGS]
    for kind in ("file", "spark"):
        s = open_store(root, kind, base=conf)
        s.apply([USER, REGION, agg_view(kind, True)])
        outs.append(s.get_historical_features(ent, refs, full_feature_names=True).to_arrow())
    print(
        json.dumps(
            {
                "rows": outs[1].num_rows,
                "entity_rows": ent.num_rows,
                "equal": outs[1].equals(outs[0]),
            }
        )
    )


if __name__ == "__main__":
    _cluster_main(Path(sys.argv[1]), sys.argv[2])
