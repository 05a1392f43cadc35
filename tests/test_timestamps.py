"""The write-path checks (``banquet.write_checks``) on every write path of the Python API, the
way back from a wrongly future-dated value (``overwrite``), and serving of values stored
before the checks existed. Embedded store; the other stores: tests/online/test_overwrite.py,
HTTP: tests/server/test_server_timestamps.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from banquet import FeatureStore, _core
from banquet.cli import cli
from banquet.errors import (
    InvalidTimestamp,
    NullKeyError,
    TimestampColumnError,
    ValueOutOfRange,
)
from banquet.online.base import rows_batch
from banquet.store import PushMode

UTC = timezone.utc
US = pa.timestamp("us", tz="UTC")
NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(hours=1)
FAR = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

FEATURES = """\
from banquet import Entity, FeatureView, Field, FileSource, PushSource
from banquet.types import Float32, Int32, Int64, UnixTimestamp

user = Entity(name="user", join_keys=["user_id"])
events = FileSource(name="events", path="data/events", timestamp_field="event_timestamp",
                    created_timestamp_column="created")
pushed = PushSource(name="pushed", batch_source=events)
stats = FeatureView(
    name="stats", entities=[user], source=pushed,
    schema=[Field(name="clicks", dtype=Int64), Field(name="ratio", dtype=Float32),
            Field(name="small", dtype=Int32), Field(name="seen", dtype=UnixTimestamp)],
)
history = FeatureView(
    name="history", entities=[user], schema=[Field(name="level", dtype=Int64)],
    source=FileSource(name="levels", path="data/levels.parquet", timestamp_field="event_timestamp"),
)
"""


def make_store(root: Path, skew: str | None = "1d") -> FeatureStore:
    root.mkdir(parents=True, exist_ok=True)
    skew_line = "null" if skew is None else repr(skew)
    (root / "feature_store.yaml").write_text(
        "project: ts_test\nregistry: data/registry.db\nprovider: local\n"
        "online_store:\n  type: sqlite\n  path: data/online_store.db\n"
        f"  max_future_skew: {skew_line}\noffline_store:\n  type: file\n"
    )
    (root / "features.py").write_text(FEATURES)
    (root / "data" / "events").mkdir(parents=True, exist_ok=True)
    pq.write_table(frame([1], [T0]), root / "data" / "events" / "part-0.parquet")
    levels = root / "data" / "levels.parquet"
    if not levels.exists():
        write_levels(root, [1, 2], [T0, T0], [10, 20])
    store = FeatureStore(repo_path=root)
    store.apply()
    return store


def write_levels(root: Path, ids: list[int], times: list[datetime], levels: list[int]) -> None:
    table = pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(times, US),
            "level": pa.array(levels, pa.int64()),
        }
    )
    pq.write_table(table, root / "data" / "levels.parquet")


def frame(ids: list[Any], times: list[Any], clicks: list[int] | None = None, **cols: Any) -> Any:
    n = len(ids)
    base = {
        "user_id": pa.array(ids, pa.int64()),
        "event_timestamp": times if isinstance(times, pa.Array) else pa.array(times, US),
        "created": pa.array([T0] * n, US),
        "clicks": pa.array(clicks or list(range(n)), pa.int64()),
        "ratio": pa.array([0.5] * n, pa.float32()),
        "small": pa.array([1] * n, pa.int32()),
        "seen": pa.array([T0] * n, US),
    }
    for name, col in cols.items():
        base[name] = col
    return pa.table(base)


def clicks(store: FeatureStore, ids: list[int]) -> tuple[list[Any], list[str]]:
    resp = store.get_online_features(["stats:clicks"], [{"user_id": i} for i in ids])
    return resp.to_dict()["clicks"], resp.statuses["clicks"]


def offline_rows(root: Path) -> int:
    return sum(pq.read_table(p).num_rows for p in (root / "data" / "events").glob("*.parquet"))


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    return make_store(tmp_path / "repo")


# --- the representable range and the future skew -------------------------------------------


@pytest.mark.parametrize("to", list(PushMode))
def test_a_push_past_the_representable_range_is_refused_on_every_mode(
    store: FeatureStore, tmp_path: Path, to: PushMode
) -> None:
    # was: accepted; then every read of the key failed and later pushes were ignored
    with pytest.raises(InvalidTimestamp, match=r"9999-12-31T23:59:59.*outside the range"):
        store.push("pushed", frame([1, 2], [T0, FAR]), to=to)
    assert clicks(store, [1, 2]) == ([None, None], ["NOT_FOUND", "NOT_FOUND"])
    assert offline_rows(tmp_path / "repo") == 1  # nothing appended either
    store.push("pushed", frame([1, 2], [T0, T0], [7, 8]), to=to)
    assert offline_rows(tmp_path / "repo") == (1 if to == PushMode.ONLINE else 3)
    assert clicks(store, [1, 2])[0] == ([None, None] if to == PushMode.OFFLINE else [7, 8])


def test_write_to_online_store_refuses_far_times_and_created_times(store: FeatureStore) -> None:
    with pytest.raises(InvalidTimestamp, match="event time"):
        store.write_to_online_store("stats", frame([1], [FAR]))
    year1 = pa.array([datetime(1, 1, 1, tzinfo=UTC)], US)
    with pytest.raises(InvalidTimestamp, match="created time 0001-01-01"):
        store.write_to_online_store("stats", frame([1], [T0], created=year1))
    with pytest.raises(InvalidTimestamp, match="no event time"):
        store.write_to_online_store("stats", frame([1], pa.array([None], US)))
    assert clicks(store, [1]) == ([None], ["NOT_FOUND"])


def test_future_times_beyond_the_skew_are_refused_within_it_accepted(store: FeatureStore) -> None:
    with pytest.raises(InvalidTimestamp, match=r"1 row.*max_future_skew \(1d\)") as e:
        store.write_to_online_store("stats", frame([1, 2], [T0, NOW + timedelta(days=2)]))
    assert "raise online_store.max_future_skew" in str(e.value)
    assert clicks(store, [1, 2])[1] == ["NOT_FOUND", "NOT_FOUND"]
    store.write_to_online_store("stats", frame([1], [NOW + timedelta(hours=12)], [5]))
    assert clicks(store, [1]) == ([5], ["PRESENT"])


def test_a_null_skew_allows_any_representable_future(tmp_path: Path) -> None:
    store = make_store(tmp_path / "repo", skew=None)
    store.write_to_online_store("stats", frame([1], [datetime(2261, 12, 31, tzinfo=UTC)], [3]))
    assert clicks(store, [1]) == ([3], ["PRESENT"])
    with pytest.raises(InvalidTimestamp, match="outside the range"):
        store.write_to_online_store("stats", frame([1], [datetime(2262, 1, 1, tzinfo=UTC)]))


def test_timestamp_feature_values_are_range_checked_too(
    store: FeatureStore, tmp_path: Path
) -> None:
    far = pa.array([datetime(2300, 1, 1, tzinfo=UTC)], US)
    with pytest.raises(InvalidTimestamp, match="'seen': time 2300-01-01T00:00:00Z"):
        store.push("pushed", frame([1], [T0], seen=far))
    assert clicks(store, [1]) == ([None], ["NOT_FOUND"])
    # materialize: the same value in the source refuses the view (nothing written)
    events = tmp_path / "repo" / "data" / "events"
    pq.write_table(frame([2], [T0], [5], seen=far), events / "part-far.parquet")
    with pytest.raises(InvalidTimestamp, match="'stats'.*'seen'"):
        store.materialize(T0 - timedelta(days=1), NOW, feature_views=["stats"])
    assert clicks(store, [1, 2])[1] == ["NOT_FOUND", "NOT_FOUND"]
    # a window that leaves the row out works
    store.materialize(T0 - timedelta(days=1), T0 - timedelta(seconds=1), feature_views=["stats"])


# --- time zone spellings ---------------------------------------------------------------------


def test_iso_strings_with_offsets_are_the_same_instant(store: FeatureStore) -> None:
    # was: "holds strings that are not ISO timestamps" for any offset or 'Z'
    texts = ["2024-01-01T05:30:00+05:30", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000001"]
    store.write_to_online_store("stats", frame([1, 2, 3], pa.array(texts)))
    resp = store.get_online_features(["stats:clicks"], [{"user_id": i} for i in (1, 2, 3)])
    midnight = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
    assert resp.event_timestamps["clicks"] == [midnight, midnight, midnight + 1]


def test_an_unparseable_string_names_the_value(store: FeatureStore) -> None:
    with pytest.raises(TimestampColumnError, match="'yesterday'.*not an ISO 8601 time"):
        store.write_to_online_store("stats", frame([1], pa.array(["yesterday"])))


# --- keys and values -------------------------------------------------------------------------


def test_null_keys_are_refused_not_dropped(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(NullKeyError, match="'user_id' is null in 1 row"):
        store.write_to_online_store("stats", frame([1, None], [T0, T0]))
    with pytest.raises(NullKeyError):
        store.push("pushed", frame([None, 2], [T0, T0]), to=PushMode.ONLINE_AND_OFFLINE)
    assert clicks(store, [1, 2])[1] == ["NOT_FOUND", "NOT_FOUND"]
    assert offline_rows(tmp_path / "repo") == 1


def test_values_out_of_the_declared_range_are_refused(store: FeatureStore) -> None:
    # was: 1e300 stored as inf in a Float32 and served as null with status PRESENT
    huge = pa.array([0.25, 1e300])
    with pytest.raises(ValueOutOfRange, match=r"'ratio'.*1e\+300.*float") as e:
        store.write_to_online_store("stats", frame([1, 2], [T0, T0], ratio=huge))
    assert "Float64" in str(e.value)
    with pytest.raises(ValueOutOfRange, match="'small'"):
        big = pa.array([1, 2**40], pa.int64())
        store.push("pushed", frame([1, 2], [T0, T0], small=big))
    assert clicks(store, [1, 2])[1] == ["NOT_FOUND", "NOT_FOUND"]
    # inf and NaN given as such are values, not overflows
    store.write_to_online_store(
        "stats", frame([1, 2], [T0, T0], ratio=pa.array([float("inf"), float("nan")]))
    )
    got = store.get_online_features(["stats:ratio"], [{"user_id": 1}]).to_dict()["ratio"]
    assert got == [float("inf")]


# --- materialization -------------------------------------------------------------------------


def test_materialize_refuses_a_future_dated_source_row(store: FeatureStore, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    future = NOW + timedelta(days=30)
    write_levels(root, [1, 2, 3], [T0, T0, future], [10, 20, 30])
    with pytest.raises(InvalidTimestamp) as e:
        store.materialize(T0 - timedelta(days=1), NOW + timedelta(days=365))
    text = str(e.value)
    assert "'history'" in text and "1 row" in text and str(future.year) in text
    assert "earlier end" in text and "max_future_skew" in text
    got = store.get_online_features(["history:level"], [{"user_id": 1}])
    assert got.statuses["level"] == ["NOT_FOUND"]
    assert store.registry_dump().get("materializations", {}).get("history") in (None, [])
    # a window that ends before the bad row works
    store.materialize(T0 - timedelta(days=1), NOW, feature_views=["history"])
    got = store.get_online_features(["history:level"], [{"user_id": i} for i in (1, 3)])
    assert got.to_dict()["level"] == [10, None]


def test_materialize_refuses_unrepresentable_times_even_without_skew(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "data").mkdir()
    write_levels(root, [1], [datetime(2300, 1, 1, tzinfo=UTC)], [1])
    store = make_store(root, skew=None)
    with pytest.raises(InvalidTimestamp, match="2300-01-01.*outside the range"):
        store.materialize(T0, datetime(2400, 1, 1, tzinfo=UTC), feature_views=["history"])


# --- overwrite: the way back from a wrong newer value ----------------------------------------


def test_overwrite_replaces_a_wrongly_future_dated_value(tmp_path: Path) -> None:
    store = make_store(tmp_path / "repo", skew=None)
    wrong = datetime(2200, 1, 1, tzinfo=UTC)
    store.write_to_online_store("stats", frame([1, 2], [wrong, wrong], [666, 666]))
    store.push("pushed", frame([1, 2], [T0, T0], [1, 2]))
    assert clicks(store, [1, 2])[0] == [666, 666]  # newer event wins: the plain push is ignored
    store.push("pushed", frame([1], [T0], [1]), overwrite=True)
    store.write_to_online_store("stats", frame([2], [T0], [2]), overwrite=True)
    assert clicks(store, [1, 2])[0] == [1, 2]
    resp = store.get_online_features(["stats:clicks"], [{"user_id": 1}])
    assert resp.event_timestamps["clicks"] == [int(T0.timestamp()) * 1_000_000]


def test_materialize_overwrite_from_the_api_and_the_cli(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    store = make_store(root, skew=None)
    store.materialize(T0 - timedelta(days=1), NOW)
    wrong = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": pa.array([datetime(2200, 1, 1, tzinfo=UTC)] * 2, US),
            "level": pa.array([-1, -1], pa.int64()),
        }
    )
    store.write_to_online_store("history", wrong)
    store.materialize(T0 - timedelta(days=1), NOW)  # newer stored rows win
    levels = ["history:level"]
    rows = [{"user_id": 1}, {"user_id": 2}]
    assert store.get_online_features(levels, rows).to_dict()["level"] == [-1, -1]
    store.materialize(T0 - timedelta(days=1), NOW, feature_views=["history"], overwrite=True)
    assert store.get_online_features(levels, rows).to_dict()["level"] == [10, 20]

    store.write_to_online_store("history", wrong)
    start, end = (T0 - timedelta(days=1)).isoformat(), NOW.isoformat()
    result = CliRunner().invoke(cli, ["-c", str(root), "materialize", start, end, "--overwrite"])
    assert result.exit_code == 0, result.output
    fresh = FeatureStore(repo_path=root)
    assert fresh.get_online_features(levels, rows).to_dict()["level"] == [10, 20]


# --- serving values stored before the checks -------------------------------------------------


def write_raw(store: FeatureStore, ids: list[int], event_us: list[int], seen_us: list[int]) -> None:
    """Rows straight into the online store, past every check (as a pre-fix version wrote)."""
    view = store.get_feature_view("stats")
    keys = _core.serialize_entity_keys(["user_id"], [pa.array(ids, pa.int64())])
    ev = pa.array(event_us, pa.int64()).cast(US)
    n = len(ids)
    values = [
        pa.array(range(n), pa.int64()),
        pa.array([0.5] * n, pa.float32()),
        pa.array([1] * n, pa.int32()),
        pa.array(seen_us, pa.int64()).cast(US),
    ]
    blobs = _core.encode_values(ev, None, values, view.value_schema())
    store.online_store.ensure_view(store.project, view)
    store.online_store.write(
        store.project, getattr(view, "storage_name", view.name), rows_batch(keys, ev, None, blobs)
    )


def test_an_unrenderable_stored_time_is_reported_per_value(store: FeatureStore) -> None:
    ok = int(T0.timestamp()) * 1_000_000
    far = 253402300799000000  # 9999-12-31T23:59:59Z, what the old push accepted
    write_raw(store, [1, 2, 3], [ok, far, ok], [ok, ok, 2**62])
    refs = ["stats:clicks", "stats:seen"]
    resp = store.get_online_features(refs, [{"user_id": i} for i in (1, 2, 3, 4)])
    values = resp.to_dict()
    assert values["clicks"] == [0, None, 2, None]
    assert resp.statuses["clicks"] == ["PRESENT", "INVALID", "PRESENT", "NOT_FOUND"]
    assert values["seen"] == [T0, None, None, None]
    assert resp.statuses["seen"] == ["PRESENT", "INVALID", "INVALID", "NOT_FOUND"]
    assert resp.event_timestamps["clicks"] == [ok, None, ok, None]
    assert resp.to_df().shape == (4, 3)
    # the general read path (non-plain entity values) reports the same
    general = store.get_online_features(refs, {"user_id": pa.array([1, 2], pa.int64())})
    assert general.statuses["clicks"] == ["PRESENT", "INVALID"]
    # and overwrite repairs the key
    store.write_to_online_store("stats", frame([2], [T0], [9]), overwrite=True)
    assert clicks(store, [2]) == ([9], ["PRESENT"])
