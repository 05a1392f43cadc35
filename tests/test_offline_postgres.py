"""What only the Postgres offline store does (the shared contract is in test_historical.py):
query sources, SQL entity rows, offline push into a table, type conversions, and errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from banquet import Entity, FeatureStore, FeatureView, Field, PostgreSQLSource, PushSource
from banquet.errors import (
    DataSourceError,
    EntityDataError,
    SchemaMismatch,
    SourceColumnMissing,
    StoreError,
    StoreUnavailable,
)
from banquet.store import PushMode
from banquet.types import Float64, Int64, String

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)
user = Entity(name="user", join_keys=["user_id"])


def _conn(dsn: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(dsn)
    return {
        "host": d.get("host", "127.0.0.1"),
        "port": int(d.get("port", 5432)),
        "database": d.get("dbname"),
        "user": d.get("user"),
        "password": d.get("password", ""),
    }


@pytest.fixture
def schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema with table ``scores`` (user_id integer, naive timestamps, numeric)."""
    import psycopg

    name = f"offpg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')  # type: ignore[arg-type]
        conn.execute(f'SET search_path TO "{name}"')  # type: ignore[arg-type]
        conn.execute(
            "CREATE TABLE scores (uid integer, ts timestamp, created timestamptz, "
            "raw numeric, label text)"
        )
        conn.execute(
            "INSERT INTO scores VALUES (1, '2024-01-01 00:00', '2024-01-01 00:00+00', 1.5, 'a'),"
            " (1, '2024-01-01 01:00', '2024-01-01 01:00+00', 2.5, 'b'),"
            " (2, '2024-01-01 00:00', NULL, 9, NULL)"
        )
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')  # type: ignore[arg-type]


def make_store(tmp_path: Path, dsn: str, schema: str, **offline: Any) -> FeatureStore:
    from banquet import RepoConfig

    cfg = RepoConfig.from_dict(
        {
            "project": "offpg",
            "registry": str(tmp_path / "registry.db"),
            "online_store": {"type": "sqlite", "path": str(tmp_path / "online.db")},
            "offline_store": {"type": "postgres", **_conn(dsn), "db_schema": schema, **offline},
        },
        repo_path=tmp_path,
    )
    return FeatureStore(config=cfg)


def scores_view(source: Any) -> FeatureView:
    return FeatureView(
        name="scores",
        entities=[user],
        schema=[Field(name="score", dtype=Float64), Field(name="label", dtype=String)],
        source=source,
    )


def test_query_source_with_field_mapping_and_naive_timestamps(
    tmp_path: Path, pg_dsn: str, schema: str
) -> None:
    src = PostgreSQLSource(
        name="scores_q",
        query="SELECT uid, ts, created, raw, label FROM scores WHERE uid < 100;",
        timestamp_field="ts",
        created_timestamp_column="created",
        field_mapping={"uid": "user_id", "raw": "score"},
    )
    store = make_store(tmp_path, pg_dsn, schema)
    store.apply([user, scores_view(src)])
    df = pd.DataFrame({"user_id": [1, 1, 2, 3], "event_timestamp": [T0 + H / 2, T0 + H, T0, T0]})
    out = store.get_historical_features(df, ["scores:score", "scores:label"]).to_arrow()
    # naive `ts` is UTC; numeric becomes float64; a null label stays null; no match is null
    assert out.column("score").to_pylist() == [1.5, 2.5, 9.0, None]
    assert out.column("label").to_pylist() == ["a", "b", None, None]


def test_entity_rows_as_sql_keep_the_query_order(tmp_path: Path, pg_dsn: str, schema: str) -> None:
    src = PostgreSQLSource(
        name="scores",
        table="scores",
        timestamp_field="ts",
        field_mapping={"uid": "user_id", "raw": "score"},
    )
    store = make_store(tmp_path, pg_dsn, schema)
    store.apply([user, scores_view(src)])
    sql = (
        "SELECT * FROM (VALUES (2::bigint, TIMESTAMPTZ '2024-01-02', 'x'), "
        "(1, TIMESTAMPTZ '2024-01-01 00:30+00', 'y'), (1, TIMESTAMPTZ '2024-01-02', 'z')) "
        "AS t(user_id, event_timestamp, tag)"
    )
    out = store.get_historical_features(sql, ["scores:score"]).to_arrow()
    assert out.column_names == ["user_id", "event_timestamp", "tag", "score"]
    assert out.column("tag").to_pylist() == ["x", "y", "z"]
    assert out.column("score").to_pylist() == [9.0, 1.5, 2.5]
    with pytest.raises(DataSourceError, match="entity_df query"):
        store.get_historical_features("SELECT nope FROM nowhere", ["scores:score"])
    with pytest.raises(EntityDataError):
        store.get_historical_features("  ", ["scores:score"])


def test_offline_push_appends_to_the_table_in_bulk(
    tmp_path: Path, pg_dsn: str, schema: str
) -> None:
    import psycopg

    batch = PostgreSQLSource(
        name="scores",
        table="scores",
        timestamp_field="ts",
        created_timestamp_column="created",
        field_mapping={"uid": "user_id", "raw": "score"},
    )
    push_src = PushSource(name="scores_push", batch_source=batch)
    store = make_store(tmp_path, pg_dsn, schema)
    store.apply([user, scores_view(push_src)])
    n = 5000
    rows = pd.DataFrame(
        {
            "user_id": range(10, 10 + n),  # int64 into an `integer` column
            "ts": [T0 + 5 * H] * n,
            "score": [0.25] * n,
            "label": ["pushed"] * n,
        }
    )
    store.push("scores_push", rows, to=PushMode.ONLINE_AND_OFFLINE)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        got = conn.execute(
            f'SELECT count(*), min(uid), max(uid), count(created) FROM "{schema}".scores '
            "WHERE label = 'pushed'"  # type: ignore[arg-type]
        ).fetchone()
        leftover = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE '_banquet_push_%'"
        ).fetchone()
    assert got == (n, 10, 10 + n - 1, 0)
    assert leftover == (0,)
    out = store.get_historical_features(
        pd.DataFrame({"user_id": [10, 1], "event_timestamp": [T0 + 6 * H] * 2}), ["scores:label"]
    ).to_arrow()
    assert out.column("label").to_pylist() == ["pushed", "b"]
    online = store.get_online_features(["scores:label"], [{"user_id": 11}]).to_dict()
    assert online["label"] == ["pushed"]


def test_offline_push_errors_name_the_source(tmp_path: Path, pg_dsn: str, schema: str) -> None:
    table_src = PostgreSQLSource(
        name="scores", table="scores", timestamp_field="ts", field_mapping={"uid": "user_id"}
    )
    query_src = PostgreSQLSource(
        name="scores_q", query="SELECT * FROM scores", timestamp_field="ts"
    )
    store = make_store(tmp_path, pg_dsn, schema)
    offline = store.offline_store
    import pyarrow as pa

    rows = pa.table({"uid": [1], "ts": pa.array([T0], pa.timestamp("us", tz="UTC"))})
    with pytest.raises(DataSourceError, match="scores_q.*table="):
        offline.append(query_src, rows)
    with pytest.raises(SchemaMismatch, match="bogus"):
        offline.append(table_src, rows.append_column("bogus", pa.array([1])))
    with pytest.raises(SchemaMismatch, match="scores"):  # text into an integer column
        offline.append(table_src, pa.table({"uid": ["x"]}))


def test_apply_reports_a_bad_query_and_a_missing_column(
    tmp_path: Path, pg_dsn: str, schema: str
) -> None:
    store = make_store(tmp_path, pg_dsn, schema)
    broken = PostgreSQLSource(name="broken", query="SELEC uid FROM scores", timestamp_field="ts")
    with pytest.raises(DataSourceError, match="broken.*syntax"):
        store.apply([user, scores_view(broken)])
    no_ts = PostgreSQLSource(name="no_ts", table="scores", timestamp_field="event_ts")
    with pytest.raises(SourceColumnMissing, match="no_ts.*event_ts"):
        store.apply([user, scores_view(no_ts)])


def test_integer_source_keys_join_bigint_entity_keys(
    tmp_path: Path, pg_dsn: str, schema: str
) -> None:
    src = PostgreSQLSource(
        name="scores",
        table="scores",
        timestamp_field="ts",
        field_mapping={"uid": "user_id", "raw": "score"},
    )
    store = make_store(tmp_path, pg_dsn, schema)
    store.apply([user, scores_view(src)])
    assert store.get_feature_view("scores").key_dtype("user_id") is not None
    big = pd.DataFrame(
        {"user_id": pd.array([1, 2**40], dtype="int64"), "event_timestamp": [T0 + H] * 2}
    )
    out = store.get_historical_features(big, ["scores:score"]).to_arrow()
    assert out.column("score").to_pylist()[0] == 2.5
    typed = FeatureView(
        name="typed",
        entities=[user],
        schema=[Field(name="user_id", dtype=Int64), Field(name="score", dtype=Float64)],
        source=src,
    )
    store.apply([typed])  # an int64 key declared over an integer column reads fine too
    out = store.get_historical_features(big, ["typed:score"]).to_arrow()
    assert out.column("score").to_pylist() == [2.5, None]


def test_unreachable_server_and_rejected_login(tmp_path: Path, pg_dsn: str, schema: str) -> None:
    src = PostgreSQLSource(name="scores", table="scores", timestamp_field="ts")
    down = make_store(tmp_path / "a", pg_dsn, schema, port=1)
    with pytest.raises(StoreUnavailable, match="unavailable"):
        down.offline_store.source_schema(src)
    denied = make_store(tmp_path / "b", pg_dsn, schema, database="no_such_database")
    with pytest.raises(StoreError, match="cannot connect") as e:
        denied.offline_store.source_schema(src)
    assert not isinstance(e.value, StoreUnavailable)


def test_file_store_refuses_sql_entity_rows(tmp_path: Path) -> None:
    from banquet import RepoConfig

    cfg = RepoConfig.from_dict({"project": "f", "registry": str(tmp_path / "r.db")})
    with pytest.raises(EntityDataError, match="postgres"):
        FeatureStore(config=cfg).offline_store.query("SELECT 1")


def test_a_lost_connection_is_reopened_for_reads(tmp_path: Path, pg_dsn: str, schema: str) -> None:
    import psycopg

    store = make_store(tmp_path, pg_dsn, schema)
    offline = store.offline_store
    pid = offline.query("SELECT pg_backend_pid() AS pid").column("pid")[0].as_py()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    again = offline.query("SELECT pg_backend_pid() AS pid").column("pid")[0].as_py()
    assert again != pid


def test_a_forked_child_opens_its_own_connection(tmp_path: Path, pg_dsn: str, schema: str) -> None:
    import os

    offline = make_store(tmp_path, pg_dsn, schema).offline_store
    parent_pid = offline.query("SELECT pg_backend_pid() AS pid").column("pid")[0].as_py()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            pid = offline.query("SELECT pg_backend_pid() AS pid").column("pid")[0].as_py()
            os.write(write_end, str(pid).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    child_backend = int(os.read(read_end, 64) or b"0")
    os.close(read_end)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child_backend not in (0, parent_pid)
    again = offline.query("SELECT pg_backend_pid() AS pid").column("pid")[0].as_py()
    assert again == parent_pid  # the parent's connection is untouched
