"""get_historical_features: the output contract, the point-in-time rules against a brute-force
reference (hypothesis), and every named edge case, on every offline store (the ``backend``
fixture: Parquet files, the same files as objects on the local S3 server, tables in the
local Postgres, and Parquet files read by the Spark offline store on ``local[2]``)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banquet import (
    Entity,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PostgreSQLSource,
    RepoConfig,
    SparkSource,
)
from banquet.errors import (
    DataSourceError,
    FeatureNameCollisionError,
    FeatureNotFound,
    FeatureViewNotFound,
    KeyTypeError,
    MissingJoinKeyError,
    SourceColumnMissing,
    SourceFileNotFound,
    TimestampColumnError,
)
from banquet.types import Float64, Int64, String

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
UTC_US = pa.timestamp("us", tz="UTC")
H = timedelta(hours=1)


class Backend:
    """One offline store for a test: ``write`` a named source's rows, ``source`` defines a
    batch source over it, ``store`` opens a FeatureStore on that offline store. Postgres
    tables live in a schema of this test module run, with a prefix unique to this backend; S3
    objects (written through the S3 API) in a bucket of this module run, with that prefix."""

    def __init__(
        self, kind: str, root: Path, pg: PgSchema | None = None, s3: Any | None = None
    ) -> None:
        self.kind, self.root, self.pg, self.s3 = kind, root, pg, s3
        self.prefix = f"t{next(_counter)}_"
        self.stores: list[FeatureStore] = []

    def close(self) -> None:
        """Close the online stores opened (Spark's: the local Redis, whose sockets would
        otherwise be left to the garbage collector)."""
        for s in self.stores:
            if s._online is not None:
                s._online.close()

    def write(self, name: str, cols: dict[str, Any]) -> None:
        table = pa.table(cols)
        if self.s3 is not None:
            self.s3.put_parquet(f"{self.prefix}{name}.parquet", table)
        elif self.pg is None:
            path = self.root / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
        else:
            self.pg.write(self.prefix + name, table)

    def drop(self, name: str) -> None:
        if self.s3 is not None:
            self.s3.delete(f"{self.prefix}{name}.parquet")
        elif self.pg is None:
            (self.root / f"{name}.parquet").unlink()
        else:
            self.pg.execute(f'DROP TABLE "{self.pg.schema}"."{self.prefix}{name}"')

    def source(self, name: str, **kw: Any) -> FileSource | PostgreSQLSource | SparkSource:
        if self.kind == "spark":
            return SparkSource(name=kw.pop("source_name", name), path=f"{name}.parquet", **kw)
        if self.s3 is not None:
            path = self.s3.url(f"{self.prefix}{name}.parquet")
            endpoint = self.s3.endpoint
            return FileSource(
                name=kw.pop("source_name", name), path=path, s3_endpoint_override=endpoint, **kw
            )
        if self.pg is None:
            return FileSource(name=kw.pop("source_name", name), path=f"{name}.parquet", **kw)
        return PostgreSQLSource(name=kw.pop("source_name", name), table=self.prefix + name, **kw)

    def store(self) -> FeatureStore:
        offline: dict[str, Any] = {"type": "file"}
        online: dict[str, Any] = {"type": "sqlite", "path": str(self.root / "online.db")}
        if self.pg is not None:
            offline = {"type": "postgres", **self.pg.conn, "db_schema": self.pg.schema}
        if self.kind == "spark":  # SQLite is refused beside Spark: the local Redis instead
            offline = {"type": "spark", "spark_conf": SPARK_TEST_CONF}
            online = {"type": "redis", "connection_string": _redis_connection()}
        cfg = RepoConfig.from_dict(
            {
                "project": "hist",
                "registry": str(self.root / f"{self.prefix}registry.db"),
                "online_store": online,
                "offline_store": offline,
            },
            repo_path=self.root,
        )
        store = FeatureStore(config=cfg)
        self.stores.append(store)
        return store


class PgSchema:
    """A schema in the local Postgres for one module run, dropped at its end."""

    def __init__(self, dsn: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        self.dsn = dsn
        self.schema = f"hist_{uuid.uuid4().hex[:10]}"
        d = conninfo_to_dict(dsn)
        self.conn = {
            "host": d.get("host", "127.0.0.1"),
            "port": int(d.get("port", 5432)),
            "database": d.get("dbname", "postgres"),
            "user": d.get("user", "postgres"),
            "password": d.get("password", ""),
        }
        self._adbc: Any = None
        self.execute(f'CREATE SCHEMA "{self.schema}"')

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def write(self, table: str, rows: pa.Table) -> None:
        import adbc_driver_postgresql.dbapi as adbc

        if self._adbc is None:  # one connection: opening one costs ~150 ms
            self._adbc = adbc.connect(self.dsn, autocommit=True)
        with self._adbc.cursor() as cur:
            cur.adbc_ingest(table, rows, mode="replace", db_schema_name=self.schema)

    def drop(self) -> None:
        if self._adbc is not None:
            self._adbc.close()
        self.execute(f'DROP SCHEMA "{self.schema}" CASCADE')


_counter = itertools.count()


BackendKind = tuple[str, "PgSchema | None", Any]  # (kind, Postgres schema, S3 bucket)


SPARK_TEST_CONF = {  # the local[2] session of the test run (tests/spark uses the same)
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}


def _redis_connection() -> str:
    import os

    host, port = os.environ["BANQUET_REDIS_HOST"], os.environ["BANQUET_REDIS_PORT"]
    return f"{host}:{port},password={os.environ['BANQUET_REDIS_PASSWORD']}"


@pytest.fixture(
    scope="module",
    params=[
        "file",
        "s3",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.redis]),
    ],
)
def backend_kind(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackendKind]:
    if request.param in ("file", "spark"):
        yield request.param, None, None
        return
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        s3_test_env, bucket_class = request.getfixturevalue("s3_tools")
        with s3_test_env(tmp_path_factory.mktemp("aws")):
            bucket = bucket_class(endpoint, f"hist-{uuid.uuid4().hex[:12]}")
            yield "s3", None, bucket
            bucket.remove()
        return
    pg = PgSchema(request.getfixturevalue("pg_dsn"))
    yield "postgres", pg, None
    pg.drop()


@pytest.fixture
def backend(backend_kind: BackendKind, tmp_path: Path) -> Iterator[Backend]:
    be = Backend(backend_kind[0], tmp_path, backend_kind[1], backend_kind[2])
    yield be
    be.close()


user = Entity(name="user", join_keys=["user_id"])


def views(
    be: Backend, ttls: dict[str, timedelta | None], name: str = "src", created: str = "created"
) -> list[FeatureView]:
    src = be.source(
        name, source_name="src", timestamp_field="event_timestamp", created_timestamp_column=created
    )
    return [
        FeatureView(
            name=name,
            entities=[user],
            ttl=ttl,
            source=src,
            schema=[Field(name="f_int", dtype=Int64), Field(name="f_str", dtype=String)],
        )
        for name, ttl in ttls.items()
    ]


# --- the brute-force reference ----------------------------------------------------------------


def reference(
    entity: list[tuple[Any, datetime | None]], rows: list[dict[str, Any]], ttl: timedelta | None
) -> list[int | None]:
    """For each entity row, the index of the matching source row, by the documented rules."""
    out: list[int | None] = []
    for key, ets in entity:
        best, best_rank = None, None
        for i, r in enumerate(rows):
            if key is None or ets is None or r["user_id"] != key or r["event_timestamp"] is None:
                continue
            if r["event_timestamp"] > ets or (ttl and r["event_timestamp"] < ets - ttl):
                continue
            created = r["created"]
            rank = (r["event_timestamp"], created is not None, created or T0, i)
            if best_rank is None or rank > best_rank:
                best, best_rank = i, rank
        out.append(best)
    return out


hours = st.integers(0, 8).map(lambda h: T0 + h * H)
source_rows = st.lists(
    st.fixed_dictionaries(
        {
            "user_id": st.integers(1, 4),
            "event_timestamp": hours,
            "created": st.none() | hours,
            "f_int": st.none() | st.integers(-5, 5),
            "f_str": st.none() | st.sampled_from(["a", "b", ""]),
        }
    ),
    max_size=25,
)
entity_rows = st.lists(st.tuples(st.integers(1, 5), hours), max_size=15)
TTLS = {"unbounded": None, "one_hour": H, "three_hours": 3 * H, "zero": timedelta(0)}


@pytest.fixture(scope="module")
def prop_backend(
    backend_kind: BackendKind, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    be = Backend(backend_kind[0], tmp_path_factory.mktemp("prop"), backend_kind[1], backend_kind[2])
    be.write(
        "src",
        {
            "user_id": pa.array([1], pa.int64()),
            "event_timestamp": pa.array([T0], UTC_US),
            "created": pa.array([T0], UTC_US),
            "f_int": [1],
            "f_str": ["x"],
        },
    )
    store = be.store()
    store.apply([user, *views(be, TTLS)])
    be.prop_store = store  # type: ignore[attr-defined]
    yield be
    be.close()


# Postgres writes a table per example, S3 an object: fewer examples keep the suite fast, same
# strategies.
EXAMPLES = {"file": 600, "s3": 40, "postgres": 100, "spark": 12}  # Spark: 4 jobs an example


def test_matches_brute_force_reference(prop_backend: Backend) -> None:
    store: FeatureStore = prop_backend.prop_store  # type: ignore[attr-defined]

    @settings(
        max_examples=EXAMPLES[prop_backend.kind],
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(rows=source_rows, entity=entity_rows)
    def check(rows: list[dict[str, Any]], entity: list[tuple[int, datetime]]) -> None:
        check_against_reference(prop_backend, store, rows, entity)

    check()


def check_against_reference(
    be: Backend, store: FeatureStore, rows: list[dict[str, Any]], entity: list[tuple[int, datetime]]
) -> None:
    be.write(
        "src",
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "event_timestamp": pa.array([r["event_timestamp"] for r in rows], UTC_US),
            "created": pa.array([r["created"] for r in rows], UTC_US),
            "f_int": pa.array([r["f_int"] for r in rows], pa.int64()),
            "f_str": pa.array([r["f_str"] for r in rows], pa.string()),
        },
    )
    entity_df = pa.table(
        {
            "user_id": pa.array([k for k, _ in entity], pa.int64()),
            "event_timestamp": pa.array([t for _, t in entity], UTC_US),
        }
    )
    refs = [f"{v}:{f}" for v in TTLS for f in ("f_int", "f_str")]
    out = store.get_historical_features(entity_df, refs, full_feature_names=True).to_arrow()
    assert out.num_rows == len(entity)
    assert out.column_names == ["user_id", "event_timestamp", *(r.replace(":", "__") for r in refs)]
    for view, ttl in TTLS.items():
        want = reference(entity, rows, ttl)
        for f in ("f_int", "f_str"):
            got = out.column(f"{view}__{f}").to_pylist()
            assert got == [None if i is None else rows[i][f] for i in want], (view, f)


# --- named edge cases ---------------------------------------------------------------------------


@pytest.fixture
def store(backend: Backend) -> FeatureStore:
    backend.write(
        "src",
        {
            "user_id": pa.array([1, 1, 1, 2, 2], pa.int64()),
            "event_timestamp": pa.array([T0, T0 + H, T0 + H, T0, T0 + 2 * H], UTC_US),
            "created": pa.array([T0, T0 + H, T0 + 2 * H, None, T0], UTC_US),
            "f_int": pa.array([10, 11, 12, 20, None], pa.int64()),
            "f_str": pa.array(["a", "b", "c", "d", "e"]),
        },
    )
    s = backend.store()
    s.apply([user, *views(backend, {"v": None, "short": H})])
    return s


def entity(keys: list[Any], times: list[datetime], **extra: Any) -> pd.DataFrame:
    return pd.DataFrame({"user_id": keys, "event_timestamp": times, **extra})


def test_created_timestamp_breaks_event_time_ties(store: FeatureStore) -> None:
    out = store.get_historical_features(entity([1], [T0 + H]), ["v:f_int"]).to_df()
    assert out["f_int"].tolist() == [12]  # same event ts as row 11; larger created wins


def test_full_tie_goes_to_the_later_row(backend: Backend) -> None:
    backend.write(
        "src",
        {
            "user_id": pa.array([1, 1, 1], pa.int64()),
            "event_timestamp": pa.array([T0] * 3, UTC_US),
            "created": pa.array([T0] * 3, UTC_US),
            "f_int": [1, 2, 3],
            "f_str": ["x", "y", "z"],
        },
    )
    s = backend.store()
    s.apply([user, *views(backend, {"v": None})])
    for _ in range(3):  # the same answer every run
        assert s.get_historical_features(entity([1], [T0]), ["v:f_int"]).to_arrow().column(
            "f_int"
        ).to_pylist() == [3]


def test_ttl_boundaries_are_inclusive(store: FeatureStore) -> None:
    df = entity([2, 2, 2], [T0 + H, T0 + H + timedelta(microseconds=1), T0])
    out = store.get_historical_features(df, ["short:f_str"]).to_arrow()
    assert out.column("f_str").to_pylist() == [
        "d",
        None,
        "d",
    ]  # exactly ttl old matches; 1 µs older does not


def test_future_rows_are_not_visible(store: FeatureStore) -> None:
    out = store.get_historical_features(
        entity([1], [T0 + H - timedelta(microseconds=1)]), ["v:f_int"]
    ).to_df()
    assert out["f_int"].tolist() == [10]


def test_null_feature_value_is_returned_as_null_not_skipped(store: FeatureStore) -> None:
    out = store.get_historical_features(
        entity([2], [T0 + 3 * H]), ["v:f_int", "v:f_str"]
    ).to_arrow()
    assert out.column("f_int").to_pylist() == [None]
    assert out.column("f_str").to_pylist() == ["e"]


def test_output_contract_order_duplicates_and_extra_columns(store: FeatureStore) -> None:
    df = entity([2, 1, 9, 1, 2], [T0 + 5 * H] * 5, label=[1, 0, 1, 0, 1])
    out = store.get_historical_features(
        df, ["v:f_str", "short:f_int"], full_feature_names=True
    ).to_arrow()
    assert out.column_names == ["user_id", "event_timestamp", "label", "v__f_str", "short__f_int"]
    assert out.column("user_id").to_pylist() == [2, 1, 9, 1, 2]
    assert out.column("label").to_pylist() == [1, 0, 1, 0, 1]
    assert out.column("v__f_str").to_pylist() == ["e", "c", None, "c", "e"]
    assert out.column("short__f_int").null_count == 5


def test_typed_nulls_when_nothing_matches(store: FeatureStore) -> None:
    out = store.get_historical_features(entity([9], [T0]), ["v:f_int", "v:f_str"]).to_arrow()
    assert out.schema.field("f_int").type == pa.int64()
    assert out.schema.field("f_str").type == pa.string()
    assert out.column("f_int").null_count == 1


def test_empty_entity_df(store: FeatureStore) -> None:
    df = pa.table({"user_id": pa.array([], pa.int64()), "event_timestamp": pa.array([], UTC_US)})
    out = store.get_historical_features(df, ["v:f_int"]).to_arrow()
    assert out.num_rows == 0 and out.column_names == ["user_id", "event_timestamp", "f_int"]


def test_empty_source(backend: Backend) -> None:
    backend.write(
        "src",
        {
            "user_id": pa.array([], pa.int64()),
            "event_timestamp": pa.array([], UTC_US),
            "created": pa.array([], UTC_US),
            "f_int": pa.array([], pa.int64()),
            "f_str": pa.array([], pa.string()),
        },
    )
    s = backend.store()
    s.apply([user, *views(backend, {"v": None})])
    out = s.get_historical_features(entity([1, 2], [T0, T0]), ["v:f_int"]).to_df()
    assert out["f_int"].isna().all() and len(out) == 2


def test_naive_timestamps_are_utc_and_aware_ones_are_converted(store: FeatureStore) -> None:
    naive = entity([1], [datetime(2024, 1, 1, 1, 0)])
    assert store.get_historical_features(naive, ["v:f_int"]).to_arrow().column(
        "f_int"
    ).to_pylist() == [12]
    # 02:00 in UTC+1 is 01:00 UTC
    aware = entity([1], [datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=1)))])
    assert store.get_historical_features(aware, ["v:f_int"]).to_arrow().column(
        "f_int"
    ).to_pylist() == [12]
    ny = pd.DataFrame(
        {
            "user_id": [1],
            "ts": pd.to_datetime(["2023-12-31 19:59:59"]).tz_localize("America/New_York"),
        }
    )
    assert store.get_historical_features(ny, ["v:f_int"]).to_arrow().column(
        "f_int"
    ).to_pylist() == [10]


def test_entity_df_kinds(store: FeatureStore) -> None:
    import polars as pl

    want = [12, None]
    table = pa.table(
        {"user_id": pa.array([1, 5], pa.int64()), "event_timestamp": pa.array([T0 + H] * 2, UTC_US)}
    )
    assert (
        store.get_historical_features(table, ["v:f_int"]).to_arrow().column("f_int").to_pylist()
        == want
    )
    pdf = pl.from_arrow(table)
    job = store.get_historical_features(pdf, ["v:f_int"])
    assert job.to_polars()["f_int"].to_list() == want

    class Stream:  # anything exporting the Arrow PyCapsule stream
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            return table.__arrow_c_stream__(requested_schema)

    assert (
        store.get_historical_features(Stream(), ["v:f_int"])
        .to_arrow()
        .column("f_int")
        .to_pylist()[0]
        == 12
    )


def test_to_parquet(store: FeatureStore, tmp_path: Path) -> None:
    store.get_historical_features(entity([1], [T0 + H]), ["v:f_int"]).to_parquet(
        str(tmp_path / "out.parquet")
    )
    assert pq.read_table(tmp_path / "out.parquet").column("f_int").to_pylist() == [12]


def test_feature_service_and_projection(store: FeatureStore) -> None:
    v = store.get_feature_view("v")
    svc = FeatureService(name="svc", features=[v[["f_str"]]])
    store.apply([svc])
    out = store.get_historical_features(
        entity([1], [T0 + H]), store.get_feature_service("svc")
    ).to_df()
    assert out.columns.tolist() == ["user_id", "event_timestamp", "f_str"]


def test_name_collision_needs_full_feature_names(store: FeatureStore) -> None:
    with pytest.raises(FeatureNameCollisionError, match="full_feature_names"):
        store.get_historical_features(entity([1], [T0]), ["v:f_int", "short:f_int"])
    with pytest.raises(FeatureNameCollisionError):
        store.get_historical_features(entity([1], [T0], f_int=[0]), ["v:f_int"])


def test_field_mapping_and_join_key_map(backend: Backend) -> None:
    backend.write(
        "m",
        {
            "uid": pa.array([7], pa.int32()),
            "ts": pa.array([T0], UTC_US),
            "raw_score": pa.array([0.5]),
        },
    )
    src = backend.source(
        "m",
        timestamp_field="ts",
        field_mapping={"raw_score": "score", "uid": "user_id"},
    )
    fv = FeatureView(
        name="scores", entities=[user], source=src, schema=[Field(name="score", dtype=Float64)]
    )
    s = backend.store()
    s.apply([user, fv])
    df = pd.DataFrame({"customer": [7, 8], "event_timestamp": [T0, T0]})
    mapped = s.get_feature_view("scores").with_join_key_map({"user_id": "customer"})
    svc = FeatureService(name="by_customer", features=[mapped.with_name("cust_scores")])
    s.apply([svc])
    out = s.get_historical_features(
        df, s.get_feature_service("by_customer"), full_feature_names=True
    ).to_df()
    assert out["cust_scores__score"].tolist()[0] == 0.5 and pd.isna(
        out["cust_scores__score"].tolist()[1]
    )


def test_views_with_different_and_composite_join_keys(backend: Backend) -> None:
    merchant = Entity(name="merchant", join_keys=["merchant_id"])
    backend.write(
        "um",
        {
            "user_id": pa.array([1, 1], pa.int64()),
            "merchant_id": ["m1", "m2"],
            "event_timestamp": pa.array([T0, T0], UTC_US),
            "spend": [1.0, 2.0],
        },
    )
    backend.write(
        "m",
        {
            "merchant_id": ["m1", "m2"],
            "event_timestamp": pa.array([T0, T0], UTC_US),
            "risk": [0.1, 0.9],
        },
    )
    um = FeatureView(
        name="um",
        entities=[user, merchant],
        schema=[Field(name="spend", dtype=Float64)],
        source=backend.source("um", timestamp_field="event_timestamp"),
    )
    m = FeatureView(
        name="m",
        entities=[merchant],
        schema=[Field(name="risk", dtype=Float64)],
        source=backend.source("m", source_name="msrc", timestamp_field="event_timestamp"),
    )
    s = backend.store()
    s.apply([user, merchant, um, m])
    df = pd.DataFrame(
        {"user_id": [1, 1, 2], "merchant_id": ["m2", "m1", "m1"], "event_timestamp": [T0] * 3}
    )
    out = s.get_historical_features(df, ["um:spend", "m:risk"]).to_df()
    assert out["spend"].tolist()[:2] == [2.0, 1.0] and pd.isna(out["spend"].tolist()[2])
    assert out["risk"].tolist() == [0.9, 0.1, 0.1]


def test_partitioned_directory_source(tmp_path: Path) -> None:  # Parquet only
    for day in (1, 2):
        path = tmp_path / "part" / f"day={day}" / "x.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(
            pa.table(
                {
                    "user_id": pa.array([1], pa.int64()),
                    "event_timestamp": pa.array([T0 + day * H], UTC_US),
                    "created": pa.array([None], UTC_US),
                    "f_int": [day],
                    "f_str": [str(day)],
                }
            ),
            path,
        )
    s = Backend("file", tmp_path).store()
    src = FileSource(
        name="src",
        path="part",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    fv = FeatureView(
        name="v", entities=[user], source=src, schema=[Field(name="f_int", dtype=Int64)]
    )
    s.apply([user, fv])
    assert s.get_historical_features(entity([1], [T0 + 5 * H]), ["v:f_int"]).to_arrow().column(
        "f_int"
    ).to_pylist() == [2]


# --- bad input ------------------------------------------------------------------------------------


def test_unknown_view_and_feature(store: FeatureStore) -> None:
    with pytest.raises(FeatureViewNotFound, match="nope"):
        store.get_historical_features(entity([1], [T0]), ["nope:f_int"])
    with pytest.raises(FeatureNotFound, match="f_nope"):
        store.get_historical_features(entity([1], [T0]), ["v:f_nope"])


def test_missing_join_key(store: FeatureStore) -> None:
    with pytest.raises(MissingJoinKeyError, match="user_id"):
        store.get_historical_features(
            pd.DataFrame({"uid": [1], "event_timestamp": [T0]}), ["v:f_int"]
        )


def test_key_of_wrong_type(store: FeatureStore) -> None:
    with pytest.raises(KeyTypeError, match="user_id"):
        store.get_historical_features(entity(["abc"], [T0]), ["v:f_int"]).to_arrow()
    with pytest.raises(KeyTypeError):  # 1.5 cannot become an int64 key without loss
        store.get_historical_features(entity([1.5], [T0]), ["v:f_int"]).to_arrow()
    ok = store.get_historical_features(
        entity([1.0], [T0 + H]), ["v:f_int"]
    ).to_df()  # exact floats are fine
    assert ok["f_int"].tolist() == [12]


def test_no_timestamp_column(store: FeatureStore) -> None:
    with pytest.raises(TimestampColumnError, match="event_timestamp"):
        store.get_historical_features(pd.DataFrame({"user_id": [1]}), ["v:f_int"])


def test_source_missing_or_lacking_a_column(store: FeatureStore, backend: Backend) -> None:
    backend.drop("src")
    missing = SourceFileNotFound if backend.kind in ("file", "s3") else DataSourceError
    with pytest.raises(missing, match="src"):
        store.get_historical_features(entity([1], [T0]), ["v:f_int"]).to_arrow()
    backend.write(
        "src",
        {
            "user_id": pa.array([1], pa.int64()),
            "event_timestamp": pa.array([T0], UTC_US),
            "created": pa.array([T0], UTC_US),
            "f_int": [1],
        },
    )
    with pytest.raises(SourceColumnMissing, match="f_str"):
        store.get_historical_features(entity([1], [T0]), ["v:f_str"]).to_arrow()
