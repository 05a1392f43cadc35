"""Writes from outside: ``write_to_online_store`` and ``push`` (online, offline, both) on the
embedded online store and Parquet sources. A rejected frame writes nothing anywhere."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import FeatureStore, _core
from banquet.errors import DataSourceNotFound, KeyTypeError, SchemaMismatch, TimestampColumnError
from banquet.store import PushMode

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)
US = pa.timestamp("us", tz="UTC")

FEATURES = """\
from banquet import Entity, FeatureView, Field, FileSource, PushSource
from banquet.types import Array, Float32, Int64, String

user = Entity(name="user", join_keys=["user_id"])

dir_push = PushSource(
    name="dir_push",
    batch_source=FileSource(
        name="events_dir", path="data/events", timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)
file_push = PushSource(
    name="file_push",
    batch_source=FileSource(
        name="events_file", path="data/events.parquet", timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)

dir_stats = FeatureView(
    name="dir_stats",
    entities=[user],
    schema=[Field(name="amount", dtype=Float32), Field(name="count", dtype=Int64),
            Field(name="tag", dtype=String), Field(name="tags", dtype=Array(String))],
    source=dir_push,
)
dir_small = FeatureView(
    name="dir_small", entities=[user], schema=[Field(name="count", dtype=Int64)], source=dir_push,
)
file_stats = FeatureView(
    name="file_stats",
    entities=[user],
    schema=[Field(name="amount", dtype=Float32), Field(name="count", dtype=Int64)],
    source=file_push,
)
"""

ALL = [
    "dir_stats:amount",
    "dir_stats:count",
    "dir_stats:tag",
    "dir_stats:tags",
    "dir_small:count",
    "file_stats:amount",
    "file_stats:count",
]


YAML = """\
project: push_test
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
"""


def make_store(repo: Path) -> FeatureStore:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(YAML)
    (repo / "features.py").write_text(FEATURES)
    data = repo / "data"
    (data / "events").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2], pa.int64()),
                "event_timestamp": pa.array([T0, T0], US),
                "created": pa.array([T0, T0], US),
                "amount": pa.array([1.5, 2.5], pa.float32()),
                "count": pa.array([1, 2], pa.int64()),
                "tag": ["a", "b"],
                "tags": pa.array([["a"], []], pa.list_(pa.string())),
            }
        ),
        data / "events" / "part-0.parquet",
    )
    # the single file: naive nanosecond timestamps, as pandas writes them, and an extra column
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2], pa.int64()),
                "event_timestamp": pa.array([T0.replace(tzinfo=None)] * 2, pa.timestamp("ns")),
                "created": pa.array([T0.replace(tzinfo=None)] * 2, pa.timestamp("ns")),
                "amount": pa.array([1.5, 2.5], pa.float32()),
                "count": pa.array([1, 2], pa.int64()),
            }
        ),
        data / "events.parquet",
    )
    store = FeatureStore(repo_path=repo)
    store.apply()
    return store


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return make_store(tmp_path / "repo")


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    """For tests that must write nothing (each compares its own before/after snapshot)."""
    store = make_store(tmp_path_factory.mktemp("push") / "repo")
    store.push("dir_push", frame(count=[5, 6]), to=PushMode.ONLINE)
    return store


def frame(**overrides: Any) -> pd.DataFrame:
    """Rows for users 1 and 3 at T1 (user 1 is newer than its stored T0 row)."""
    cols: dict[str, Any] = {
        "user_id": [1, 3],
        "event_timestamp": [T1, T1],
        "amount": [9.5, 3.25],
        "count": [10, 30],
        "tag": ["x", "y"],
        "tags": [["p", "q"], []],
    }
    cols.update(overrides)
    return pd.DataFrame({k: v for k, v in cols.items() if v is not None})


def online(
    store: FeatureStore, refs: list[str] = ALL, ids: tuple[int, ...] = (1, 2, 3)
) -> dict[str, list[Any]]:
    return store.get_online_features(
        refs, {"user_id": list(ids)}, full_feature_names=True
    ).to_dict()


def online_tables(store: FeatureStore) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(store.config.resolve("data/online_store.db"))
    try:
        return {
            v: conn.execute(f'SELECT * FROM "{store.project}:{v}" ORDER BY entity_key').fetchall()
            for v in ("dir_stats", "dir_small", "file_stats")
        }
    finally:
        conn.close()


def offline_files(store: FeatureStore) -> dict[str, bytes]:
    data = store.config.resolve("data")
    return {
        str(p.relative_to(data)): p.read_bytes()
        for p in sorted(data.rglob("*"))
        if p.is_file() and "parquet" in p.name
    }


def snapshot(store: FeatureStore) -> tuple[Any, Any]:
    return online_tables(store), offline_files(store)


def offline_rows(store: FeatureStore, source: str) -> pd.DataFrame:
    path = store.config.resolve("data/events" if source == "dir" else "data/events.parquet")
    return (
        pq.read_table(path)
        .to_pandas()
        .sort_values(["event_timestamp", "user_id"])
        .reset_index(drop=True)
    )


# --- write_to_online_store ---------------------------------------------------------------------------


def test_write_to_online_store_then_read(store: FeatureStore) -> None:
    before = offline_files(store)
    df = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 2, 2],
            "event_timestamp": [T1, T2, T1, T1, T0],
            "created": [T0, T0, T1, T2, T2],
            "count": [11, 12, 21, 22, 20],
        }
    )
    store.write_to_online_store("dir_small", df)
    # per key the latest event wins, then the latest created
    assert online(store, ["dir_small:count"]) == {
        "user_id": [1, 2, 3],
        "dir_small__count": [12, 22, None],
    }
    assert offline_files(store) == before  # the offline store is not touched
    assert online(store, ["dir_stats:count"])["dir_stats__count"] == [
        None,
        None,
        None,
    ]  # nor other views


@pytest.mark.parametrize("kind", ["pandas", "arrow", "polars"])
def test_write_to_online_store_frame_kinds(store: FeatureStore, kind: str) -> None:
    df = frame()
    data: Any = {"pandas": df, "arrow": pa.Table.from_pandas(df), "polars": pl.from_pandas(df)}[
        kind
    ]
    store.write_to_online_store("dir_stats", data)
    got = online(store, ["dir_stats:amount", "dir_stats:tag", "dir_stats:tags"])
    assert got == {
        "user_id": [1, 2, 3],
        "dir_stats__amount": [9.5, None, 3.25],
        "dir_stats__tag": ["x", None, "y"],
        "dir_stats__tags": [["p", "q"], None, []],
    }


def test_write_to_online_store_older_never_replaces_newer(store: FeatureStore) -> None:
    store.write_to_online_store("dir_small", frame(event_timestamp=[T2, T2]))
    store.write_to_online_store("dir_small", frame(event_timestamp=[T1, T1], count=[-1, -3]))
    assert online(store, ["dir_small:count"])["dir_small__count"] == [10, None, 30]
    store.write_to_online_store(
        "dir_small", frame(event_timestamp=[T2, T2], count=[100, 300])
    )  # same time
    assert online(store, ["dir_small:count"])["dir_small__count"] == [100, None, 300]


def test_write_to_online_store_rejects_bad_frames(store: FeatureStore) -> None:
    store.write_to_online_store("dir_stats", frame())
    before = snapshot(store)
    with pytest.raises(SchemaMismatch, match="tag"):
        store.write_to_online_store("dir_stats", frame(tag=None))
    with pytest.raises(SchemaMismatch, match="amount"):
        store.write_to_online_store("dir_stats", frame(amount=["1.5", "2"]))
    with pytest.raises(KeyTypeError, match="user_id"):
        store.write_to_online_store("dir_stats", frame(user_id=["1", "3"]))
    assert snapshot(store) == before


def test_write_to_online_store_unknown_view(store: FeatureStore) -> None:
    from banquet.errors import FeatureViewNotFound

    with pytest.raises(FeatureViewNotFound):
        store.write_to_online_store("nope", frame())


# --- push: online, offline, both -----------------------------------------------------------------------


def test_push_online(store: FeatureStore) -> None:
    before = offline_files(store)
    store.push("dir_push", frame(), to=PushMode.ONLINE)
    got = online(store)
    # every view fed by the push source gets the rows; the file source's view does not
    assert got["dir_stats__amount"] == [9.5, None, 3.25]
    assert got["dir_stats__tags"] == [["p", "q"], None, []]
    assert got["dir_small__count"] == [10, None, 30]
    assert got["file_stats__count"] == [None, None, None]
    assert offline_files(store) == before
    store.push("dir_push", frame(count=[11, 31]))  # ONLINE is the default
    assert online(store)["dir_small__count"] == [11, None, 31]


def test_push_offline_appends_a_file_to_a_directory_source(store: FeatureStore) -> None:
    before_online = online_tables(store)
    before = offline_files(store)
    store.push("dir_push", frame(), to=PushMode.OFFLINE)
    assert online_tables(store) == before_online  # nothing online
    after = offline_files(store)
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and new[0].startswith("events/part-") and new[0].endswith(".parquet")
    assert {k: v for k, v in after.items() if k in before} == before  # old files untouched
    rows = offline_rows(store, "dir")
    assert rows["user_id"].tolist() == [1, 2, 1, 3]
    assert rows["count"].tolist() == [1, 2, 10, 30]
    assert rows["tags"].map(list).tolist() == [["a"], [], ["p", "q"], []]
    assert rows["created"].isna().tolist() == [False, False, True, True]
    # the source's types are kept
    assert pq.read_table(store.config.resolve("data") / new[0]).schema == pq.read_schema(
        store.config.resolve("data/events/part-0.parquet")
    )
    # materialization reads the pushed rows back from the offline store
    store.materialize(T0, T2)
    assert online(store)["dir_stats__count"] == [10, 2, 30]
    assert online(store)["dir_stats__tags"] == [["p", "q"], [], []]


def test_push_offline_rewrites_a_single_file_source(store: FeatureStore) -> None:
    path = store.config.resolve("data/events.parquet")
    schema = pq.read_schema(path)
    store.push("file_push", frame(), to=PushMode.OFFLINE)
    assert pq.read_schema(path) == schema  # same columns and types (naive ns timestamps)
    rows = offline_rows(store, "file")
    assert rows["user_id"].tolist() == [1, 2, 1, 3]
    assert rows["amount"].tolist() == [1.5, 2.5, 9.5, 3.25]
    assert rows["event_timestamp"].tolist() == [
        pd.Timestamp(t.replace(tzinfo=None)) for t in (T0, T0, T1, T1)
    ]
    assert rows["created"].isna().tolist() == [False, False, True, True]
    assert (
        sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []
    )  # no temp file left
    assert online(store)["file_stats__count"] == [None, None, None]
    store.materialize(T0, T2)
    assert online(store)["file_stats__count"] == [10, 2, 30]


def test_push_offline_keeps_other_source_columns(store: FeatureStore) -> None:
    """A single-file source with a column no view reads: a frame holding it is appended with
    it; a frame without it fails before anything is written (online included)."""
    path = store.config.resolve("data/events.parquet")
    table = pq.read_table(path)
    pq.write_table(table.append_column("note", pa.array(["n1", "n2"])), path)
    before = snapshot(store)
    with pytest.raises(Exception, match="note"):
        store.push("file_push", frame(), to=PushMode.ONLINE_AND_OFFLINE)
    assert snapshot(store) == before
    store.push("file_push", frame(note=["n3", "n4"]), to=PushMode.ONLINE_AND_OFFLINE)
    assert offline_rows(store, "file")["note"].tolist() == ["n1", "n2", "n3", "n4"]
    assert online(store)["file_stats__count"] == [10, None, 30]


def test_push_online_and_offline(store: FeatureStore) -> None:
    before = offline_files(store)
    store.push("dir_push", frame(created=[T2, T2]), to=PushMode.ONLINE_AND_OFFLINE)
    assert online(store)["dir_small__count"] == [10, None, 30]
    assert len(offline_files(store)) == len(before) + 1
    rows = offline_rows(store, "dir")
    assert rows["count"].tolist() == [1, 2, 10, 30]
    assert rows["created"].tolist()[2:] == [pd.Timestamp(T2), pd.Timestamp(T2)]
    store.push("file_push", frame(), to=PushMode.ONLINE_AND_OFFLINE)
    assert online(store)["file_stats__amount"] == [9.5, None, 3.25]
    assert offline_rows(store, "file")["count"].tolist() == [1, 2, 10, 30]


def test_push_naive_timestamps_are_utc(store: FeatureStore) -> None:
    store.push(
        "dir_push",
        frame(event_timestamp=[T1.replace(tzinfo=None)] * 2),
        to=PushMode.ONLINE_AND_OFFLINE,
    )
    resp = store.get_online_features(["dir_small:count"], {"user_id": [1]})
    assert resp.event_timestamps["count"] == [int(T1.timestamp()) * 1_000_000]
    rows = offline_rows(store, "dir")
    assert rows["event_timestamp"].tolist()[2:] == [pd.Timestamp(T1)] * 2


# --- rejected frames write nothing ---------------------------------------------------------------------

BAD_FRAMES = {
    "missing feature": (frame(tag=None), SchemaMismatch),
    "missing timestamp": (frame().drop(columns=["event_timestamp"]), SchemaMismatch),
    "missing key": (frame().drop(columns=["user_id"]), SchemaMismatch),
    "strings for Float32": (frame(amount=["1.5", "2.0"]), SchemaMismatch),
    "ints for String": (frame(tag=[1, 2]), SchemaMismatch),
    "floats for Int64": (frame(count=[1.5, 2.0]), SchemaMismatch),
    "string list for Float32": (frame(amount=[["1"], ["2"]]), SchemaMismatch),
    "ints for Array(String)": (frame(tags=[[1], [2]]), SchemaMismatch),
    "string key for Int64": (frame(user_id=["1", "3"]), KeyTypeError),
    "bad timestamps": (frame(event_timestamp=["yesterday", "today"]), TimestampColumnError),
}


@pytest.mark.parametrize("mode", list(PushMode), ids=lambda m: m.name)
@pytest.mark.parametrize("bad", list(BAD_FRAMES))
def test_push_rejects_bad_frames_before_writing(
    shared_store: FeatureStore, bad: str, mode: PushMode
) -> None:
    store = shared_store
    before = snapshot(store)
    df, error = BAD_FRAMES[bad]
    with pytest.raises(error):
        store.push("dir_push", df, to=mode)
    assert snapshot(store) == before


def test_push_checks_every_view_before_writing(store: FeatureStore) -> None:
    """The frame suits dir_small (count) but not dir_stats (no tag): nothing is written,
    not even to dir_small or the offline files."""
    before = snapshot(store)
    with pytest.raises(SchemaMismatch, match="dir_stats"):
        store.push(
            "dir_push", frame(tag=None, tags=None, amount=None), to=PushMode.ONLINE_AND_OFFLINE
        )
    assert snapshot(store) == before


def test_push_to_unknown_source(store: FeatureStore) -> None:
    with pytest.raises(DataSourceNotFound, match="dir_push"):
        store.push("nope", frame())
    with pytest.raises(DataSourceNotFound):
        store.push("events_dir", frame())  # a batch source is not a push source


def test_numeric_widening_is_accepted(store: FeatureStore) -> None:
    # ints for Float32, int32 for Int64, whole floats (pandas' ints with a gap) for Int64
    store.push(
        "dir_push",
        frame(amount=[1, 2], count=pd.array([7, None], dtype="Float64")),
        to=PushMode.ONLINE,
    )
    got = online(store, ["dir_stats:amount", "dir_stats:count"])
    assert got["dir_stats__amount"] == [1.0, None, 2.0]
    assert got["dir_stats__count"] == [7, None, None]


# --- an older pushed row never replaces a newer stored one -----------------------------------------


def test_older_pushed_row_never_replaces_newer(store: FeatureStore) -> None:
    store.materialize(T0, T2)  # user 1 and 2 at T0
    store.push("dir_push", frame(event_timestamp=[T2, T2]))
    assert online(store, ["dir_small:count"])["dir_small__count"] == [10, 2, 30]
    # older than what is stored: ignored
    store.push("dir_push", frame(event_timestamp=[T1, T1], count=[-1, -3]))
    assert online(store, ["dir_small:count"])["dir_small__count"] == [10, 2, 30]
    # re-materializing the older offline rows does not go back either
    store.materialize(T0, T2)
    assert online(store, ["dir_small:count"])["dir_small__count"] == [10, 2, 30]
    # the same event time with a later created time replaces
    store.push("dir_push", frame(event_timestamp=[T2, T2], created=[T1, T1], count=[11, 31]))
    assert online(store, ["dir_small:count"])["dir_small__count"] == [11, 2, 31]
    store.push("dir_push", frame(event_timestamp=[T2, T2], created=[T0, T0], count=[0, 0]))
    assert online(store, ["dir_small:count"])["dir_small__count"] == [11, 2, 31]


# --- historical retrieval sees offline pushes --------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(_core, "asof_join"),
    reason="banquet._core.asof_join (the as-of kernel) is not built yet",
)
@pytest.mark.parametrize("source", ["dir_push", "file_push"])
def test_historical_sees_pushed_rows(store: FeatureStore, source: str) -> None:
    view = "dir_small" if source == "dir_push" else "file_stats"
    store.push(source, frame(), to=PushMode.OFFLINE)
    entity = pd.DataFrame({"user_id": [1, 1, 2, 3, 3], "event_timestamp": [T0, T1, T2, T0, T2]})
    out = store.get_historical_features(entity, [f"{view}:count"]).to_df()
    assert out["count"].tolist()[:3] == [1, 10, 2]
    assert pd.isna(out["count"].tolist()[3]) and out["count"].tolist()[4] == 30
