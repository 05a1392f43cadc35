"""Materialization into the embedded (SQLite) online store: what lands in the online store is
the latest row per key in the window, computed here independently in plain Python. The main
checks run twice (``events_store``): the source in the repo folder, and on the local S3 server."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from banquet import FeatureStore, _core
from banquet.materialize import to_us

MakeRepo = Callable[..., Path]

UTC = timezone.utc
BASE = datetime(2024, 3, 1, tzinfo=UTC)
N_KEYS = 25  # key 24 only has rows outside the main test window
PROJECT = "test_project"

FEATURES = """\
from datetime import timedelta

from banquet import Entity, FeatureView, Field, FileSource
from banquet.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"])

events = FileSource(
    name="events", path="data/events.parquet", timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

stats = FeatureView(
    name="stats",
    entities=[user],
    schema=[Field(name="a", dtype=Int64), Field(name="b", dtype=Float64), Field(name="c", dtype=String)],
    source=events,
)

recent = FeatureView(
    name="recent",
    entities=[user],
    ttl=timedelta(hours=10),
    schema=[Field(name="a", dtype=Int64)],
    source=events,
)
"""


# --- data and the independent expectation --------------------------------------------------------


def make_rows(seed: int = 7, n: int = 400) -> list[dict[str, Any]]:
    """Several rows per key; event times on whole hours (many ties), created times from a few
    values or null (ties on both too). ``a`` is the row number, so it names the winning row."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        key = rng.randrange(N_KEYS - 1)
        rows.append(
            {
                "user_id": key,
                "event_timestamp": BASE + timedelta(hours=rng.randint(0, 60)),
                "created": rng.choice(
                    [None, BASE, BASE + timedelta(minutes=1), BASE + timedelta(minutes=2)]
                ),
                "a": i,
                "b": rng.choice([None, rng.random()]),
                "c": rng.choice([None, "x", "y", "zz"]),
            }
        )
    # key 24: rows before and after the main window only
    for h in (2, 5, 55):
        rows.append(
            {
                "user_id": N_KEYS - 1,
                "event_timestamp": BASE + timedelta(hours=h),
                "created": None,
                "a": n + h,
                "b": 1.0,
                "c": "k",
            }
        )
    return rows


def latest(
    rows: list[dict[str, Any]], start: datetime | None, end: datetime
) -> dict[int, dict[str, Any]]:
    """Per key, the row with the latest event time in [start, end]; ties go to the larger
    created time (null first), then to the row that comes last."""
    best: dict[int, tuple[Any, dict[str, Any]]] = {}
    for i, r in enumerate(rows):
        ev = r["event_timestamp"]
        if (start is not None and ev < start) or ev > end:
            continue
        cr = r["created"]
        rank = (ev, cr is not None, cr or BASE, i)
        k = r["user_id"]
        if k not in best or rank > best[k][0]:
            best[k] = (rank, r)
    return {k: r for k, (_, r) in best.items()}


def write_rows(path: Path, rows: list[dict[str, Any]], tz: str | None = "UTC") -> None:
    import pyarrow.parquet as pq

    ts_type = pa.timestamp("us", tz=tz)

    def ts(v: datetime | None) -> datetime | None:
        return v if v is None or tz else v.replace(tzinfo=None)

    table = pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "event_timestamp": pa.array([ts(r["event_timestamp"]) for r in rows], ts_type),
            "created": pa.array([ts(r["created"]) for r in rows], ts_type),
            "a": pa.array([r["a"] for r in rows], pa.int64()),
            "b": pa.array([r["b"] for r in rows], pa.float64()),
            "c": pa.array([r["c"] for r in rows], pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def make_store(
    tmp_repo: MakeRepo, rows: list[dict[str, Any]], tz: str | None = "UTC"
) -> FeatureStore:
    repo = tmp_repo({"features.py": FEATURES})
    write_rows(repo / "data" / "events.parquet", rows, tz)
    store = FeatureStore(repo_path=repo)
    store.apply()
    return store


MakeStore = Callable[[list[dict[str, Any]]], FeatureStore]


@pytest.fixture(params=["file", "s3"])
def events_store(request: pytest.FixtureRequest, tmp_repo: MakeRepo) -> MakeStore:
    """``make_store`` with the events either in the repo's folder or as an object on the local
    S3 server (written through the S3 API): the shared checks run on both."""
    if request.param == "file":
        return lambda rows: make_store(tmp_repo, rows)
    bucket = request.getfixturevalue("s3_bucket")

    def on_s3(rows: list[dict[str, Any]]) -> FeatureStore:
        at = f'path="{bucket.url("events.parquet")}", s3_endpoint_override="{bucket.endpoint}"'
        repo = tmp_repo({"features.py": FEATURES.replace('path="data/events.parquet"', at)})
        local = repo / "data" / "events.parquet"
        write_rows(local, rows)
        bucket.put("events.parquet", local.read_bytes())
        local.unlink()  # only the S3 object can be read
        store = FeatureStore(repo_path=repo)
        store.apply()
        return store

    return on_s3


def stored(
    store: FeatureStore, view_name: str
) -> dict[int, tuple[int, int | None, dict[str, Any]]]:
    """The online table decoded: user_id -> (event µs, created µs or None, {feature: value})."""
    view = store.get_feature_view(view_name)
    # through the store's own SQLite: Python's sqlite3 in this process would break its locks
    rows = store.online_store.query(f'SELECT entity_key, value FROM "{PROJECT}:{view_name}"')  # type: ignore[attr-defined]
    ids = list(range(N_KEYS + 5))
    names = {
        k: i
        for k, i in zip(
            _core.serialize_entity_keys(["user_id"], [pa.array(ids, pa.int64())]).to_pylist(),
            ids,
            strict=True,
        )
    }
    if not rows:
        return {}
    ev, cr, cols = _core.decode_values(
        pa.array([r[1] for r in rows], pa.binary()), view.value_schema()
    )
    evs = ev.cast(pa.int64()).to_pylist()
    crs = cr.cast(pa.int64()).to_pylist()
    out = {}
    for i, (key, _) in enumerate(rows):
        out[names[key]] = (
            evs[i],
            crs[i],
            {f.name: c[i].as_py() for f, c in zip(view.features, cols, strict=True)},
        )
    return out


def raw_table(store: FeatureStore, view_name: str) -> list[tuple[Any, ...]]:
    return store.online_store.query(f'SELECT * FROM "{PROJECT}:{view_name}" ORDER BY entity_key')  # type: ignore[attr-defined,no-any-return]


def expected_stored(
    rows: list[dict[str, Any]],
    start: datetime | None,
    end: datetime,
    features: tuple[str, ...] = ("a", "b", "c"),
) -> dict[int, tuple[int, int | None, dict[str, Any]]]:
    return {
        k: (
            to_us(r["event_timestamp"]),
            None if r["created"] is None else to_us(r["created"]),
            {f: r[f] for f in features},
        )
        for k, r in latest(rows, start, end).items()
    }


def intervals(store: FeatureStore) -> dict[str, list[list[int]]]:
    return store.registry.read(PROJECT)["materializations"]  # type: ignore[no-any-return]


# --- materialize ---------------------------------------------------------------------------------

START, END = BASE + timedelta(hours=10), BASE + timedelta(hours=40)


def test_materialize_matches_latest_per_key(events_store: MakeStore) -> None:
    rows = make_rows()
    store = events_store(rows)
    store.materialize(START, END, ["stats"])

    want = latest(rows, START, END)
    assert len(want) == N_KEYS - 1  # every key but the last has rows in the window
    assert any(r["event_timestamp"] in (START, END) for r in want.values())  # bounds are hit
    ids = list(range(N_KEYS))
    resp = store.get_online_features(["stats:a", "stats:b", "stats:c"], {"user_id": ids})
    d = resp.to_dict()
    assert list(d) == ["user_id", "a", "b", "c"]
    for i, k in enumerate(ids):
        if k in want:
            assert (d["a"][i], d["b"][i], d["c"][i]) == (
                want[k]["a"],
                want[k]["b"],
                want[k]["c"],
            ), k
            assert resp.event_timestamps["a"][i] == to_us(want[k]["event_timestamp"])
            for f in "abc":
                assert resp.statuses[f][i] == (
                    "PRESENT" if want[k][f] is not None else "NULL_VALUE"
                )
        else:
            assert (d["a"][i], d["b"][i], d["c"][i]) == (None, None, None)
            assert resp.statuses["a"][i] == "NOT_FOUND"
    # the created timestamps are stored too
    assert stored(store, "stats") == expected_stored(rows, START, END)
    assert intervals(store) == {"stats": [[to_us(START), to_us(END)]]}
    assert raw_table(store, "recent") == []  # only the named view


def test_window_is_inclusive_on_both_ends(events_store: MakeStore) -> None:
    t = BASE + timedelta(hours=5)
    rows = [
        {"user_id": 1, "event_timestamp": t, "created": None, "a": 1, "b": None, "c": None},
        {
            "user_id": 2,
            "event_timestamp": t + timedelta(hours=1),
            "created": None,
            "a": 2,
            "b": None,
            "c": None,
        },
        {
            "user_id": 3,
            "event_timestamp": t - timedelta(microseconds=1),
            "created": None,
            "a": 3,
            "b": None,
            "c": None,
        },
        {
            "user_id": 3,
            "event_timestamp": t + timedelta(hours=1, microseconds=1),
            "created": None,
            "a": 4,
            "b": None,
            "c": None,
        },
    ]
    store = events_store(rows)
    store.materialize(t, t + timedelta(hours=1), ["stats"])
    assert {k: v[2]["a"] for k, v in stored(store, "stats").items()} == {1: 1, 2: 2}
    # start == end is a valid one-instant window
    store.materialize(t - timedelta(microseconds=1), t - timedelta(microseconds=1), ["stats"])
    assert stored(store, "stats")[3][2]["a"] == 3


def test_second_precision_source_with_sub_second_window(tmp_repo: MakeRepo) -> None:
    """Bounds pushed into the Parquet scan are rounded outward, then applied exactly."""
    import pyarrow.parquet as pq

    t = BASE.replace(tzinfo=None)
    store = make_store(tmp_repo, make_rows())
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2, 3, 4], pa.int64()),
                "event_timestamp": pa.array(
                    [t + timedelta(seconds=s) for s in (0, 1, 2, 3)], pa.timestamp("s")
                ),
                "created": pa.array([None] * 4, pa.timestamp("s")),
                "a": pa.array([0, 1, 2, 3], pa.int64()),
                "b": pa.array([None] * 4, pa.float64()),
                "c": pa.array([None] * 4, pa.string()),
            }
        ),
        store.repo_path / "data" / "events.parquet",
    )
    store.materialize(BASE + timedelta(seconds=0.5), BASE + timedelta(seconds=2.5), ["stats"])
    assert {k: v[2]["a"] for k, v in stored(store, "stats").items()} == {2: 1, 3: 2}
    store.materialize(BASE + timedelta(seconds=3), BASE + timedelta(seconds=3), ["stats"])
    assert {k: v[2]["a"] for k, v in stored(store, "stats").items()} == {2: 1, 3: 2, 4: 3}


def test_start_after_end_is_refused(tmp_repo: MakeRepo) -> None:
    store = make_store(tmp_repo, make_rows())
    with pytest.raises(ValueError, match="after"):
        store.materialize(END, START)
    assert intervals(store) == {}


def test_empty_window(events_store: MakeStore) -> None:
    store = events_store(make_rows())
    far = BASE + timedelta(days=100)
    store.materialize(far, far + timedelta(days=1))
    assert stored(store, "stats") == {} and stored(store, "recent") == {}
    assert set(intervals(store)) == {"stats", "recent"}


def test_rematerializing_is_idempotent(events_store: MakeStore) -> None:
    rows = make_rows()
    store = events_store(rows)
    store.materialize(START, END)
    first = {v: raw_table(store, v) for v in ("stats", "recent")}
    assert first["stats"]
    store.materialize(START, END)
    assert {v: raw_table(store, v) for v in ("stats", "recent")} == first
    # a fresh store object (new process-level caches) changes nothing either
    FeatureStore(repo_path=store.repo_path).materialize(START, END)
    assert {v: raw_table(store, v) for v in ("stats", "recent")} == first
    assert intervals(store)["stats"] == [[to_us(START), to_us(END)]]


def test_older_event_never_replaces_newer(events_store: MakeStore) -> None:
    rows = make_rows()
    store = events_store(rows)
    late = (BASE + timedelta(hours=30), BASE + timedelta(hours=60))
    early = (BASE, BASE + timedelta(hours=29))
    store.materialize(*late, ["stats"])
    store.materialize(*early, ["stats"])
    # every key ends up with its overall latest row: the later window's where it has one
    assert stored(store, "stats") == expected_stored(rows, None, BASE + timedelta(hours=60))
    want_late = expected_stored(rows, *late)
    got = stored(store, "stats")
    assert all(got[k] == v for k, v in want_late.items())
    assert intervals(store)["stats"] == [[to_us(t) for t in early], [to_us(t) for t in late]]
    # a window bridging the gap merges the intervals
    store.materialize(early[1], late[0], ["stats"])
    assert intervals(store)["stats"] == [[to_us(early[0]), to_us(late[1])]]
    assert stored(store, "stats") == expected_stored(rows, None, BASE + timedelta(hours=60))


def test_same_event_time_larger_created_wins_across_runs(
    tmp_repo: MakeRepo, write_parquet: Any
) -> None:
    t = BASE + timedelta(hours=1)
    rows = [
        {
            "user_id": 1,
            "event_timestamp": t,
            "created": BASE + timedelta(minutes=5),
            "a": 1,
            "b": None,
            "c": None,
        },
        {
            "user_id": 1,
            "event_timestamp": t,
            "created": BASE + timedelta(minutes=9),
            "a": 2,
            "b": None,
            "c": None,
        },
    ]
    store = make_store(tmp_repo, rows)
    store.materialize(BASE, t)
    assert stored(store, "stats")[1][2]["a"] == 2
    # the source now only holds the older-created row: materializing it again keeps row 2
    write_rows(store.repo_path / "data" / "events.parquet", rows[:1])
    store.materialize(BASE, t)
    assert stored(store, "stats")[1][2]["a"] == 2


# --- materialize_incremental ---------------------------------------------------------------------


def test_materialize_incremental(events_store: MakeStore) -> None:
    rows = make_rows()
    store = events_store(rows)
    end1 = BASE + timedelta(hours=30)
    store.materialize_incremental(end1)
    ttl = timedelta(hours=10)
    # first run: views with a ttl start at end - ttl, views without one from the beginning
    assert intervals(store) == {
        "recent": [[to_us(end1 - ttl), to_us(end1)]],
        "stats": [[0, to_us(end1)]],
    }
    assert stored(store, "recent") == expected_stored(rows, end1 - ttl, end1, ("a",))
    assert stored(store, "stats") == expected_stored(rows, None, end1)

    # second run (same store object): continues from the last end
    end2 = BASE + timedelta(hours=45)
    store.materialize_incremental(end2)
    assert intervals(store) == {
        "recent": [[to_us(end1 - ttl), to_us(end2)]],
        "stats": [[0, to_us(end2)]],
    }
    assert stored(store, "recent") == expected_stored(rows, end1 - ttl, end2, ("a",))
    assert stored(store, "stats") == expected_stored(rows, None, end2)


def test_materialize_incremental_continues_from_last_end_only(tmp_repo: MakeRepo) -> None:
    """A row older than the last end that appears later is not picked up by the next run
    (the window really starts at the last end), but one after it is."""
    rows = make_rows()
    store = make_store(tmp_repo, rows)
    end1 = BASE + timedelta(hours=30)
    store.materialize_incremental(end1, ["recent"])
    extra = [
        {
            "user_id": 0,
            "event_timestamp": end1 - timedelta(hours=1),
            "created": BASE + timedelta(days=1),
            "a": 10_000,
            "b": None,
            "c": None,
        },
        {
            "user_id": 1,
            "event_timestamp": end1 + timedelta(minutes=30),
            "created": None,
            "a": 10_001,
            "b": None,
            "c": None,
        },
    ]
    write_rows(store.repo_path / "data" / "events.parquet", rows + extra)
    store.materialize_incremental(end1 + timedelta(hours=1), ["recent"])
    got = stored(store, "recent")
    assert got[1][2]["a"] == 10_001
    assert got[0][2]["a"] != 10_000
    assert intervals(store) == {
        "recent": [[to_us(end1 - timedelta(hours=10)), to_us(end1 + timedelta(hours=1))]]
    }


def test_materialize_incremental_end_before_last_end_does_nothing(tmp_repo: MakeRepo) -> None:
    store = make_store(tmp_repo, make_rows())
    store.materialize_incremental(END, ["recent"])
    before = raw_table(store, "recent")
    store.materialize_incremental(START, ["recent"])
    assert raw_table(store, "recent") == before
    assert intervals(store)["recent"] == [[to_us(END - timedelta(hours=10)), to_us(END)]]


# --- failures: the interval is recorded only after the write succeeded -------------------------


def test_failed_write_records_no_interval(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = make_rows()
    store = make_store(tmp_repo, rows)
    online = store.online_store

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(online, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        store.materialize(START, END, ["stats"])
    with pytest.raises(OSError, match="disk full"):
        store.materialize_incremental(END)
    assert intervals(store) == {}
    assert stored(store, "stats") == {}

    monkeypatch.undo()
    store.materialize(START, END, ["stats"])
    assert intervals(store) == {"stats": [[to_us(START), to_us(END)]]}
    assert stored(store, "stats") == expected_stored(rows, START, END)


def test_failure_in_a_later_batch_records_no_interval(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import banquet.materialize as mat

    rows = make_rows()
    store = make_store(tmp_repo, rows)
    online = store.online_store
    real = online.write
    calls = []

    def second_fails(*args: Any, **kwargs: Any) -> None:
        calls.append(args[2].num_rows)
        if len(calls) == 2:
            raise RuntimeError("connection lost")
        real(*args, **kwargs)

    monkeypatch.setattr(mat, "BATCH_ROWS", 5)
    monkeypatch.setattr(online, "write", second_fails)
    with pytest.raises(RuntimeError, match="connection lost"):
        store.materialize(START, END, ["stats"])
    assert calls == [5, 5]
    assert intervals(store) == {}
    partial = stored(store, "stats")
    want = expected_stored(rows, START, END)
    assert len(partial) == 5 and all(want[k] == v for k, v in partial.items())

    monkeypatch.setattr(online, "write", real)
    store.materialize(START, END, ["stats"])
    assert stored(store, "stats") == want
    assert intervals(store) == {"stats": [[to_us(START), to_us(END)]]}


def test_first_view_recorded_when_second_fails(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Views are materialized one after another: one that finished keeps its interval."""
    store = make_store(tmp_repo, make_rows())
    online = store.online_store
    real = online.write

    def fail_recent(project: str, view: str, *args: Any) -> None:
        if view == "recent":
            raise RuntimeError("boom")
        real(project, view, *args)

    monkeypatch.setattr(online, "write", fail_recent)
    with pytest.raises(RuntimeError, match="boom"):
        store.materialize(START, END, ["stats", "recent"])
    assert intervals(store) == {"stats": [[to_us(START), to_us(END)]]}


def test_second_view_fails_to_read_first_is_recorded(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next view is read ahead on a worker: its read error surfaces after the current
    view is written and recorded."""
    store = make_store(tmp_repo, make_rows())
    offline = store.offline_store
    real = offline.scan_view

    def fail_recent(view: Any, *args: Any) -> Any:
        if view.name == "recent":
            raise OSError("source unreadable")
        return real(view, *args)

    monkeypatch.setattr(offline, "scan_view", fail_recent)
    with pytest.raises(OSError, match="source unreadable"):
        store.materialize(START, END, ["stats", "recent"])
    assert intervals(store) == {"stats": [[to_us(START), to_us(END)]]}
    assert stored(store, "recent") == {}


def test_next_view_is_read_while_the_current_one_is_written(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-ahead: the write of the first view waits until the second view's read has
    started (it would time out if they ran one after the other); one registry update."""
    import threading

    rows = make_rows()
    store = make_store(tmp_repo, rows)
    offline, online, registry = store.offline_store, store.online_store, store.registry
    read, write, update = offline.scan_view, online.write, registry.update
    second_read = threading.Event()
    updates: list[str] = []

    def reading(view: Any, *args: Any) -> Any:
        if view.name == "recent":
            second_read.set()
        return read(view, *args)

    def writing(project: str, view: str, *args: Any) -> None:
        if view == "stats":
            assert second_read.wait(10), "the next view was not read during this write"
        write(project, view, *args)

    def updating(project: str, change: Any) -> Any:
        updates.append(project)
        return update(project, change)

    monkeypatch.setattr(offline, "scan_view", reading)
    monkeypatch.setattr(online, "write", writing)
    monkeypatch.setattr(registry, "update", updating)
    store.materialize(START, END, ["stats", "recent"])
    assert len(updates) == 1
    assert set(intervals(store)) == {"stats", "recent"}
    assert stored(store, "stats") == expected_stored(rows, START, END)


def test_store_upkeep_waits_until_the_intervals_are_recorded(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's background checkpoint is held for the whole materialization (its fsyncs
    stalled the registry update behind it) and released after the registry update."""
    store = make_store(tmp_repo, make_rows())
    online, registry = store.online_store, store.registry
    events: list[str] = []

    class Native:
        def __init__(self, real: Any) -> None:
            self.real = real

        def __getattr__(self, name: str) -> Any:
            return getattr(self.real, name)

        def hold_checkpoints(self) -> None:
            events.append("hold")
            self.real.hold_checkpoints()

        def release_checkpoints(self) -> None:
            events.append("release")
            self.real.release_checkpoints()

        def write_arrays(self, project: str, view: str, *args: Any) -> int:
            events.append(f"write {view}")
            return int(self.real.write_arrays(project, view, *args))

    update = registry.update

    def updating(project: str, change: Any) -> Any:
        events.append("registry")
        return update(project, change)

    sync = online.sync

    def syncing() -> None:
        events.append("sync")
        sync()

    monkeypatch.setattr(online, "native", Native(online.native))
    monkeypatch.setattr(online, "sync", syncing)
    monkeypatch.setattr(registry, "update", updating)
    store.materialize(START, END, ["stats", "recent"])
    # the first view's rows are synced in the background while the second is written
    assert [e for e in events if e != "sync"] == [
        "hold",
        "write stats",
        "write recent",
        "registry",
        "release",
    ]
    assert events[-3:] == ["sync", "registry", "release"] and events.count("sync") == 2


def test_rows_not_made_durable_are_not_recorded(
    tmp_repo: MakeRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The online store's sync (SQLite: fsync of the WAL) comes before the registry update:
    if it fails, no interval is recorded."""
    store = make_store(tmp_repo, make_rows())
    store.online_store.sync()  # nothing written yet: no WAL file, nothing to do
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise OSError("I/O error")

    monkeypatch.setattr(store.online_store, "sync", failing)
    with pytest.raises(OSError, match="I/O error"):
        store.materialize(START, END, ["stats", "recent"])
    assert intervals(store) == {} and len(calls) == 2
    monkeypatch.undo()
    store.materialize(START, END, ["stats", "recent"])
    assert set(intervals(store)) == {"stats", "recent"}


# --- time zones ----------------------------------------------------------------------------------


def test_naive_datetimes_are_utc(tmp_repo: MakeRepo) -> None:
    rows = make_rows()
    aware = make_store(tmp_repo, rows)
    aware.materialize(START, END)
    naive = make_store(tmp_repo, rows, tz=None)  # naive timestamps in the source too
    naive.materialize(START.replace(tzinfo=None), END.replace(tzinfo=None))
    assert stored(naive, "stats") == stored(aware, "stats") == expected_stored(rows, START, END)
    assert intervals(naive) == intervals(aware)
    # a non-UTC aware datetime is the same instant
    other = make_store(tmp_repo, rows)
    plus2 = timezone(timedelta(hours=2))
    other.materialize(START.astimezone(plus2), END.astimezone(plus2))
    assert stored(other, "stats") == stored(aware, "stats")
    assert intervals(other) == intervals(aware)


_TZ_SCRIPT = """
import json, os, sys, time
os.environ["TZ"] = sys.argv[2]
time.tzset()
from datetime import datetime
from banquet import FeatureStore
store = FeatureStore(repo_path=sys.argv[1])
store.materialize(datetime.fromisoformat(sys.argv[3]), datetime.fromisoformat(sys.argv[4]), ["stats"])
store.materialize_incremental(datetime.fromisoformat(sys.argv[4]), ["recent"])
r = store.get_online_features(["stats:a", "recent:a"], {"user_id": list(range(30))}, full_feature_names=True)
print(json.dumps({"utc_offset": time.localtime().tm_gmtoff, "values": r.to_dict(), "ts": r.event_timestamps}))
"""


def test_process_time_zone_does_not_matter(tmp_repo: MakeRepo) -> None:
    rows = make_rows()
    results = []
    for zone in ("UTC", "America/Los_Angeles", "Asia/Kolkata"):
        store = make_store(tmp_repo, rows, tz=None)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _TZ_SCRIPT,
                str(store.repo_path),
                zone,
                START.replace(tzinfo=None).isoformat(),
                END.replace(tzinfo=None).isoformat(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TZ": zone},
        )
        assert out.returncode == 0, out.stderr
        results.append(json.loads(out.stdout))
        assert intervals(store) == {
            "stats": [[to_us(START), to_us(END)]],
            "recent": [[to_us(END - timedelta(hours=10)), to_us(END)]],
        }
        assert stored(store, "stats") == expected_stored(rows, START, END)
    utc, *others = results
    assert utc["utc_offset"] == 0
    for other in others:
        assert other["utc_offset"] != 0  # the zone really was in effect
        assert other["values"] == utc["values"] and other["ts"] == utc["ts"]


# --- the CLI ---------------------------------------------------------------------------------------

_SCRIPT = Path(sys.executable).with_name("banquet")
_COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "banquet.cli"]


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*_COMMAND, "-c", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


def test_cli_materialize_and_incremental(tmp_repo: MakeRepo) -> None:
    rows = make_rows()
    store = make_store(tmp_repo, rows)
    repo = store.repo_path
    # naive ISO times on the command line are UTC
    cli(repo, "materialize", START.replace(tzinfo=None).isoformat(), END.isoformat(), "-v", "stats")
    assert intervals(store) == {"stats": [[to_us(START), to_us(END)]]}
    assert stored(store, "stats") == expected_stored(rows, START, END)
    assert stored(store, "recent") == {}

    end2 = END + timedelta(hours=5)
    cli(repo, "materialize-incremental", end2.isoformat().replace("+00:00", "Z"))
    assert intervals(store) == {
        "stats": [[to_us(START), to_us(end2)]],
        "recent": [[to_us(end2 - timedelta(hours=10)), to_us(end2)]],
    }
    assert stored(store, "stats") == expected_stored(rows, START, end2)
    assert stored(store, "recent") == expected_stored(
        rows, end2 - timedelta(hours=10), end2, ("a",)
    )
    dump = json.loads(cli(repo, "registry-dump").stdout)
    assert dump["materializations"] == intervals(store)


def test_cli_materialize_bad_input(tmp_repo: MakeRepo) -> None:
    store = make_store(tmp_repo, make_rows())
    proc = subprocess.run(
        [*_COMMAND, "-c", str(store.repo_path), "materialize", "yesterday", END.isoformat()],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0 and "ISO 8601" in proc.stderr
    proc = subprocess.run(
        [
            *_COMMAND,
            "-c",
            str(store.repo_path),
            "materialize",
            START.isoformat(),
            END.isoformat(),
            "-v",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1 and "nope" in proc.stderr and "Traceback" not in proc.stderr
    assert intervals(store) == {}
