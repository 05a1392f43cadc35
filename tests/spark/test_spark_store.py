"""What only the Spark offline store does (the shared contract runs on Spark in
test_historical.py): SparkSource kinds, entity rows as a Spark DataFrame or Spark SQL,
to_spark_df / to_parquet, identical results to the file store on data spread over many
partitions (hot keys too), and the typed errors. On the ``local[2]`` session of the test run;
the standalone cluster's tests are in test_cluster.py."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import (
    DataSource,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    RepoConfig,
    SparkSource,
)
from banquet.errors import (
    ConfigError,
    DataSourceError,
    DefinitionError,
    EntityDataError,
    KeyTypeError,
    SourceColumnMissing,
    SourceFileNotFound,
)
from banquet.types import Float64, Int64, String
from test_historical import SPARK_TEST_CONF

pytestmark = [pytest.mark.spark, pytest.mark.redis]

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
UTC_US = pa.timestamp("us", tz="UTC")
H = timedelta(hours=1)
user = Entity(name="user", join_keys=["user_id"])


def _redis() -> dict[str, Any]:
    host, port = os.environ["BANQUET_REDIS_HOST"], os.environ["BANQUET_REDIS_PORT"]
    conn = f"{host}:{port},password={os.environ['BANQUET_REDIS_PASSWORD']}"
    return {"type": "redis", "connection_string": conn}


class Repo:
    """A folder with Parquet data, and stores on Spark and on files over the same data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[FeatureStore] = []

    def store(
        self,
        offline: str = "spark",
        online: dict[str, Any] | None = None,
        extra: dict[str, str] | None = None,
    ) -> FeatureStore:
        off: dict[str, Any] = {"type": "file"}
        if offline == "spark":
            off = {"type": "spark", "spark_conf": {**SPARK_TEST_CONF, **(extra or {})}}
        cfg = RepoConfig.from_dict(
            {
                "project": "sparktest",
                "registry": str(self.root / f"registry-{offline}.db"),
                "online_store": online or _redis(),
                "offline_store": off,
            },
            repo_path=self.root,
        )
        s = FeatureStore(config=cfg)
        self.opened.append(s)
        return s

    def close(self) -> None:
        for s in self.opened:
            if s._online is not None:
                s._online.close()


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    r = Repo(tmp_path)
    yield r
    r.close()


def view(source: DataSource, name: str = "v", ttl: timedelta | None = None) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[user],
        ttl=ttl,
        source=source,
        schema=[Field(name="f_int", dtype=Int64), Field(name="f_str", dtype=String)],
    )


def write_small(root: Path) -> None:
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 1, 1, 2, 2], pa.int64()),
                "event_timestamp": pa.array([T0, T0 + H, T0 + H, T0, T0 + 2 * H], UTC_US),
                "created": pa.array([T0, T0 + H, T0 + 2 * H, None, T0], UTC_US),
                "f_int": pa.array([10, 11, 12, 20, None], pa.int64()),
                "f_str": ["a", "b", "c", "d", "e"],
            }
        ),
        root / "src.parquet",
    )


ENTITY = pa.table(
    {
        "user_id": pa.array([1, 2, 1, 3, 2], pa.int64()),
        "event_timestamp": pa.array([T0 + H, T0 + 3 * H, T0, T0, T0 + H], UTC_US),
        "x": [1, 2, 3, 4, 5],
    }
)
WANT_INT = [12, None, 10, None, 20]


def path_source(**kw: Any) -> SparkSource:
    return SparkSource(
        name="src",
        path="src.parquet",
        file_format="parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        **kw,
    )


# --- definitions ---------------------------------------------------------------------------


def test_spark_source_definition_and_feast_import_path() -> None:
    from banquet.infra.offline_stores.contrib.spark_offline_store.spark_source import (
        SparkSource as FeastPath,
    )

    assert FeastPath is SparkSource
    src = SparkSource(name="s", table="db.t", timestamp_field="ts", field_mapping={"a": "b"})
    back = DataSource.from_dict(src.to_dict())
    assert isinstance(back, SparkSource) and back == src and back.table == "db.t"
    assert SparkSource(name="p", path="x", timestamp_field="ts").file_format == "parquet"
    with pytest.raises(DefinitionError, match="exactly one of table=, path= or query="):
        SparkSource(name="bad", table="t", query="select 1", timestamp_field="ts")
    with pytest.raises(DefinitionError, match="exactly one"):
        SparkSource(name="bad", timestamp_field="ts")
    with pytest.raises(DefinitionError, match="file_format= goes with path="):
        SparkSource(name="bad", table="t", file_format="csv", timestamp_field="ts")
    with pytest.raises(DefinitionError, match="not one of"):
        SparkSource(name="bad", path="p", file_format="xls", timestamp_field="ts")
    with pytest.raises(DefinitionError, match="timestamp_field= is required"):
        SparkSource(name="bad", path="p")


def test_config_spark_conf_must_be_a_mapping(tmp_path: Path) -> None:
    cfg = RepoConfig.from_dict(
        {"project": "p", "offline_store": {"type": "spark", "spark_conf": ["x"]}},
        repo_path=tmp_path,
    )
    with pytest.raises(ConfigError, match="spark_conf' must be a mapping"):
        FeatureStore(config=cfg).offline_store  # noqa: B018 - opening it checks the config


# --- retrieval -----------------------------------------------------------------------------


def test_entity_rows_as_spark_frame_and_sql(repo: Repo) -> None:
    write_small(repo.root)
    s = repo.store()
    s.apply([user, view(path_source())])
    spark = s.offline_store.spark  # type: ignore[attr-defined]
    frame = spark.createDataFrame(ENTITY)
    out = s.get_historical_features(frame, ["v:f_int", "v:f_str"]).to_arrow()
    assert out.column_names == ["user_id", "event_timestamp", "x", "f_int", "f_str"]
    assert out.column("f_int").to_pylist() == WANT_INT
    assert out.column("x").to_pylist() == [1, 2, 3, 4, 5]  # input order
    frame.createOrReplaceTempView("banquet_entity_rows")
    sql = "SELECT * FROM banquet_entity_rows WHERE x <> 4"
    out = s.get_historical_features(sql, ["v:f_int"]).to_df()
    assert out["x"].tolist() == [1, 2, 3, 5]  # the query's order
    assert [None if v != v else v for v in out["f_int"].tolist()] == [12, None, 10, 20]
    with pytest.raises(DataSourceError, match="entity_df"):
        s.get_historical_features("SELECT nope FROM nowhere_at_all", ["v:f_int"]).to_arrow()


def test_local_entity_rows_staged_as_parquet_or_shipped(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local entity rows go to Spark as Parquet in the staging folder (removed with the job),
    or through createDataFrame where no folder is shared; any partition count, same rows."""
    from banquet.offline.spark.store import SparkOfflineStore

    write_small(repo.root)
    stage = repo.root / "stage"
    s = repo.store(extra={"banquet.staging_path": str(stage), "banquet.join_partitions": "3"})
    s.apply([user, view(path_source())])
    job = s.get_historical_features(ENTITY, ["v:f_int", "v:f_str"])
    assert job.to_arrow().column("f_int").to_pylist() == WANT_INT
    (folder,) = stage.iterdir()
    assert [p.suffix for p in folder.iterdir()] == [".parquet"]  # one file: the one view
    del job
    gc.collect()
    assert list(folder.iterdir()) == []
    monkeypatch.setattr(SparkOfflineStore, "staging_dir", lambda self: None)
    out = repo.store().get_historical_features(ENTITY, ["v:f_int"]).to_arrow()
    assert out.column("f_int").to_pylist() == WANT_INT
    with pytest.raises(ConfigError, match="join_partitions"):
        repo.store(extra={"banquet.join_partitions": "many"}).offline_store  # noqa: B018


def test_to_spark_df_and_to_parquet_by_spark(repo: Repo) -> None:
    write_small(repo.root)
    s = repo.store()
    s.apply([user, view(path_source())])
    job = s.get_historical_features(ENTITY, ["v:f_int", "v:f_str"])
    df = job.to_spark_df()  # type: ignore[attr-defined]
    assert df.columns == ["user_id", "event_timestamp", "x", "f_int", "f_str"]
    rows = df.collect()
    assert [r["f_int"] for r in rows] == WANT_INT
    out_dir = repo.root / "out.parquet"
    job.to_parquet(str(out_dir))
    assert out_dir.is_dir()  # a folder of part files, written by the executors
    assert pq.read_table(out_dir).column("f_int").to_pylist() == WANT_INT


def test_table_and_query_sources(repo: Repo) -> None:
    write_small(repo.root)
    s = repo.store()
    spark = s.offline_store.spark  # type: ignore[attr-defined]
    spark.read.parquet(str(repo.root / "src.parquet")).createOrReplaceTempView("banquet_src")
    by_table = SparkSource(
        name="by_table",
        table="banquet_src",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    by_query = SparkSource(
        name="by_query",
        query="SELECT user_id AS uid, event_timestamp, created, f_int, f_str FROM banquet_src",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        field_mapping={"uid": "user_id"},
    )
    s.apply([user, view(by_table, "t"), view(by_query, "q")])
    out = s.get_historical_features(ENTITY, ["t:f_int", "q:f_str"]).to_arrow()
    assert out.column("f_int").to_pylist() == WANT_INT
    assert out.column("f_str").to_pylist() == ["c", "e", "a", None, "d"]


def _random_data(root: Path, rows: int, keys: int, hot_share: float, seed: int) -> pa.Table:
    """Feature rows in two files (so source order spans files), with ties, null created
    times and null values; keys drawn so that key 0 holds ``hot_share`` of the rows."""
    rng = np.random.default_rng(seed)
    hot = rng.random(rows) < hot_share
    key = np.where(hot, 0, rng.integers(1, keys, rows))
    ts = T0.timestamp() * 1e6 + rng.integers(0, 200, rows) * 3_600_000_000
    created = rng.integers(0, 3, rows) * 1_000_000 + ts
    table = pa.table(
        {
            "user_id": pa.array(key, pa.int64()),
            "event_timestamp": pa.array(ts.astype("int64"), pa.int64()).cast(UTC_US),
            "created": pa.array(
                created.astype("int64"), pa.int64(), mask=rng.random(rows) < 0.1
            ).cast(UTC_US),
            "f_int": pa.array(rng.integers(-1000, 1000, rows), mask=rng.random(rows) < 0.05),
            "f_str": pa.array([f"s{i}" for i in range(rows)]),
        }
    )
    (root / "data").mkdir()
    half = rows // 2
    pq.write_table(table.slice(0, half), root / "data" / "part-a.parquet", row_group_size=4096)
    pq.write_table(table.slice(half), root / "data" / "part-b.parquet", row_group_size=4096)
    ents = 6000
    return pa.table(
        {
            "user_id": pa.array(
                np.where(rng.random(ents) < hot_share, 0, rng.integers(0, keys + 5, ents)),
                pa.int64(),
            ),
            "event_timestamp": pa.array(
                (T0.timestamp() * 1e6 + rng.integers(-5, 210, ents) * 3_600_000_000).astype("int64")
            ).cast(UTC_US),
        }
    )


def data_source(kind: str) -> DataSource:
    """``_random_data``'s folder as a FileSource (``kind`` "file") or a SparkSource."""
    cls: Any = FileSource if kind == "file" else SparkSource
    src: DataSource = cls(
        name="src",
        path="data",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    return src


def data_store(
    root: Path,
    kind: str,
    online: dict[str, Any],
    spark_conf: dict[str, str] = SPARK_TEST_CONF,
    project: str | None = None,
) -> FeatureStore:
    """A store over ``root`` on files or on Spark (``spark_conf``), a registry per kind;
    nothing applied. A fresh project unless named: no online rows of another run leak in."""
    import uuid

    off: dict[str, Any] = {"type": "file"}
    if kind == "spark":
        off = {"type": "spark", "spark_conf": spark_conf}
    cfg = RepoConfig.from_dict(
        {
            "project": project or f"m{uuid.uuid4().hex[:10]}",
            "registry": str(root / f"registry-{kind}.db"),
            "online_store": online,
            "offline_store": off,
        },
        repo_path=root,
    )
    return FeatureStore(config=cfg)


@pytest.mark.parametrize("hot_share", [0.0, 0.5], ids=["uniform", "hot_key"])
def test_identical_to_the_file_store_over_many_partitions(repo: Repo, hot_share: float) -> None:
    entity = _random_data(repo.root, 40_000, 3000, hot_share, seed=7)
    refs = ["unbounded:f_int", "unbounded:f_str", "ttl:f_int", "ttl:f_str"]
    outs = []
    for kind in ("file", "spark"):
        src = data_source(kind)
        # hot keys: key 0 (half the rows) is split into ~20 time buckets
        s = repo.store(kind, extra={"banquet.hot_key_rows": "2000" if hot_share else "0"})
        s.apply([user, view(src, "unbounded"), view(src, "ttl", ttl=7 * H)])
        outs.append(s.get_historical_features(entity, refs, full_feature_names=True).to_arrow())
    assert outs[1].num_rows == entity.num_rows
    assert outs[1].equals(outs[0])
    assert outs[1].column("unbounded__f_int").null_count < entity.num_rows // 2


# --- errors and refusals -------------------------------------------------------------------


def test_sqlite_online_store_is_refused_at_apply(repo: Repo) -> None:
    write_small(repo.root)
    s = repo.store(online={"type": "sqlite", "path": str(repo.root / "online.db")})
    with pytest.raises(ConfigError, match="cannot materialize into the SQLite online store"):
        s.apply([user, view(path_source())])
    offline_only = view(path_source())
    offline_only.online = False
    s.apply([user, offline_only])  # nothing to materialize: allowed


def test_apply_names_missing_columns_paths_and_foreign_sources(repo: Repo) -> None:
    write_small(repo.root)
    s = repo.store()
    lacking = FeatureView(
        name="lacking",
        entities=[user],
        source=path_source(),
        schema=[Field(name="nope", dtype=Float64)],
    )
    with pytest.raises(SourceColumnMissing, match="'nope'"):
        s.apply([user, lacking])
    missing = SparkSource(name="gone", path="gone.parquet", timestamp_field="event_timestamp")
    with pytest.raises(SourceFileNotFound, match="gone"):
        s.apply([user, view(missing, "g")])
    foreign = FileSource(name="f", path="src.parquet", timestamp_field="event_timestamp")
    with pytest.raises(DataSourceError, match="use SparkSource"):
        s.apply([user, view(foreign, "f")])


def test_driver_rows_bounds_only_aggregated_views_reads(repo: Repo) -> None:
    """Only an aggregated view's read (its tiles are built on the driver) is counted and
    refused past banquet.driver_rows, or stopped by a bad value; a plain view's is not."""
    from banquet import BatchFeatureView
    from banquet.aggregation import Aggregation
    from banquet.errors import ResourceExhausted

    write_small(repo.root)
    plain = view(path_source())
    agg = BatchFeatureView(
        name="agg",
        entities=[user],
        source=path_source(),
        schema=[Field(name="f_int", dtype=Int64)],
        aggregations=[Aggregation(column="f_int", function="sum", time_window=2 * H)],
        online=False,
    )
    for cap in ("1", "many"):
        off: Any = repo.store(extra={"banquet.driver_rows": cap}).offline_store
        assert off.read_view(plain, plain.features, None, None).table.num_rows == 5
    with pytest.raises(ResourceExhausted, match="5 rows would be collected"):
        off = repo.store(extra={"banquet.driver_rows": "1"}).offline_store
        off.read_view(agg, agg.source_fields, None, None)
    with pytest.raises(ConfigError, match="banquet.driver_rows' is 'many'"):
        off = repo.store(extra={"banquet.driver_rows": "many"}).offline_store
        off.read_view(agg, agg.source_fields, None, None)
    off = repo.store(extra={"banquet.driver_rows": "5"}).offline_store
    assert off.read_view(agg, agg.source_fields, None, None).table.num_rows == 5


def test_entity_key_checks_run_before_any_job(repo: Repo) -> None:
    write_small(repo.root)
    s = repo.store()
    s.apply([user, view(path_source())])
    bad = ENTITY.set_column(0, "user_id", pa.array(["a", "b", "c", "d", "e"]))
    with pytest.raises(KeyTypeError, match="user_id"):
        s.get_historical_features(bad, ["v:f_int"])
    spark = s.offline_store.spark  # type: ignore[attr-defined]
    with pytest.raises(KeyTypeError, match="user_id"):
        s.get_historical_features(spark.createDataFrame(bad), ["v:f_int"])
    with pytest.raises(EntityDataError):
        s.get_historical_features(ENTITY.drop(["event_timestamp"]), ["v:f_int"])


def _online(kind: str) -> dict[str, Any]:
    e = os.environ
    if kind == "redis":
        return _redis()
    if kind == "redis_cluster":
        nodes = e["BANQUET_REDIS_CLUSTER_NODES"]
        conn = f"{nodes},password={e['BANQUET_REDIS_PASSWORD']}"
        return {"type": "redis", "redis_type": "redis_cluster", "connection_string": conn}
    return {
        "type": "postgres",
        "host": e["BANQUET_PG_HOST"],
        "port": int(e["BANQUET_PG_PORT"]),
        "database": e["BANQUET_PG_DB"],
        "user": e["BANQUET_PG_USER"],
        "password": e["BANQUET_PG_PASSWORD"],
    }


@pytest.mark.postgres
@pytest.mark.parametrize("online", ["redis", "redis_cluster", "postgres"])
def test_materialize_on_the_executors(tmp_path: Path, online: str) -> None:
    """Each task writes its keys' latest rows straight to the online store; the values read
    back equal an in-process materialization's, and a second run (a retried task writes the
    same rows again) changes nothing."""
    _random_data(tmp_path, 30_000, 2000, 0.1, seed=5)
    results = []
    for kind in ("file", "spark"):
        s = data_store(tmp_path, kind, _online(online))
        try:
            s.apply([user, view(data_source(kind))])
            for _ in range(2 if kind == "spark" else 1):
                s.materialize(T0 - H, T0 + 150 * H)
            assert s._registry.read(s.project)["materializations"]["v"]  # recorded
            rows = [{"user_id": k} for k in range(2000)]
            results.append(s.get_online_features(["v:f_int", "v:f_str"], rows).to_dict())
        finally:
            s.teardown()
            s.online_store.close()
    assert results[1] == results[0]
    assert sum(v is not None for v in results[1]["f_str"]) > 1500


def test_a_hot_key_is_cut_into_time_buckets(repo: Repo) -> None:
    from pyspark.sql import functions as F

    from banquet.offline.spark import join

    s = repo.store()
    spark = s.offline_store.spark  # type: ignore[attr-defined]
    n = 20_000
    feats = spark.range(n).select(
        F.when(F.col("id") % 2 == 0, F.lit(0)).otherwise(F.col("id")).alias(join.key_name(0)),
        F.timestamp_micros(F.col("id") * 1_000_000).alias(join.TS),
    )
    buckets = join.hot_key_buckets(feats, 1, hot_rows=2000)
    assert buckets is not None
    rows = buckets.orderBy(join.BUCKET).collect()
    assert {r[join.key_name(0)] for r in rows} == {0}  # only the key with half the rows
    assert 8 <= len(rows) <= join.MAX_BUCKETS  # ~10k rows in buckets of ~1000
    assert rows[0]["lo"] is None and rows[-1]["hi"] is None  # the whole time line covered
    assert all(a["hi"] == b["lo"] for a, b in zip(rows, rows[1:]))
    assert join.hot_key_buckets(feats, 1, hot_rows=50_000) is None


def test_materialize_refuses_future_rows_before_any_task_writes(repo: Repo) -> None:
    from banquet.errors import InvalidTimestamp

    write_small(repo.root)
    far = datetime(2200, 1, 1, tzinfo=timezone.utc)
    table = pq.read_table(repo.root / "src.parquet")
    table = table.set_column(1, "event_timestamp", pa.array([T0, T0, T0, T0, far], UTC_US))
    pq.write_table(table, repo.root / "src.parquet")
    s = repo.store()
    s.apply([user, view(path_source())])
    with pytest.raises(InvalidTimestamp, match="Nothing of this view was written"):
        s.materialize(T0 - H, datetime(2201, 1, 1, tzinfo=timezone.utc))
    assert not s._registry.read(s.project)["materializations"].get("v")
    s.teardown()
