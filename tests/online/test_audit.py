"""``banquet audit`` on every online store: clean after a materialization; a planted stale
row and a planted wrong value reported exactly (key, feature, both values, reason) with exit
status 1 from the CLI; rows pushed past the watermark compared at their own event time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from banquet import FeatureStore
from banquet.audit import DIFFERENT, NEWER_ONLINE, STALE, Difference
from banquet.cli import cli
from banquet.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import Backend

UTC = timezone.utc
US = pa.timestamp("us", tz="UTC")

FEATURES = """\
from banquet import Entity, FeatureView, Field, FileSource, PushSource
from banquet.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"])
levels = FileSource(name="levels", path="data/levels.parquet", timestamp_field="event_timestamp")
pushed = PushSource(name="pushed", batch_source=levels)
history = FeatureView(
    name="history",
    entities=[user],
    schema=[Field(name="level", dtype=Int64), Field(name="tier", dtype=String)],
    source=pushed,
)
"""

NOW = datetime.now(UTC).replace(microsecond=0)
T1 = NOW - timedelta(hours=3)
T2 = NOW - timedelta(hours=2)
MARK = NOW - timedelta(hours=1)  # the materialization's end: the watermark


@pytest.fixture
def repo(backend: Backend, tmp_path: Path) -> Iterator[tuple[Path, FeatureStore]]:
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "feature_store.yaml").write_text(
        f"project: {backend.project}\nregistry: data/registry.db\nprovider: local\n"
        + backend.yaml()
        + "offline_store:\n  type: file\n"
    )
    (root / "features.py").write_text(FEATURES)
    # three users; user 1 has two rows (the later one wins), user 3's level is null
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2, 3, 1], pa.int64()),
                "event_timestamp": pa.array([T1, T1, T2, T2], US),
                "level": pa.array([10, 20, None, 11], pa.int64()),
                "tier": pa.array(["a", "b", "c", "d"]),
            }
        ),
        root / "data" / "levels.parquet",
    )
    store = FeatureStore(repo_path=root)
    store.apply()
    store.materialize(T1 - timedelta(days=1), MARK)
    try:
        yield root, store
    finally:
        store.teardown()
        store.online_store.close()


def _rows(user: int, ts: datetime, level: int | None, tier: str) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([user], pa.int64()),
            "event_timestamp": pa.array([ts], US),
            "level": pa.array([level], pa.int64()),
            "tier": pa.array([tier]),
        }
    )


def test_clean_after_materialize(repo: tuple[Path, FeatureStore]) -> None:
    root, store = repo
    report = store.audit(sample=10)
    assert report.ok and report.differences == []
    (view,) = report.views
    assert (view.view, view.watermark, view.keys_checked) == ("history", MARK, 3)
    result = CliRunner().invoke(cli, ["-c", str(root), "audit"])
    assert result.exit_code == 0, result.output
    assert "no differences" in result.output


def test_planted_stale_and_wrong_values_are_reported_exactly(
    repo: tuple[Path, FeatureStore],
) -> None:
    root, store = repo
    # user 1: its older row (T1) written back over the newer one -> stale, both features
    store.write_to_online_store("history", _rows(1, T1, 10, "a"), overwrite=True)
    # user 2: same event time, another level -> different, that feature only
    store.write_to_online_store("history", _rows(2, T1, 99, "b"), overwrite=True)
    report = store.audit(sample=10)
    assert not report.ok
    assert report.differences == [
        Difference("history", {"user_id": 1}, "level", 10, 11, STALE, T1, T2, True),
        Difference("history", {"user_id": 1}, "tier", "a", "d", STALE, T1, T2, True),
        Difference("history", {"user_id": 2}, "level", 99, 20, DIFFERENT, T1, T1, True),
    ]

    result = CliRunner().invoke(cli, ["-c", str(root), "audit", "--sample", "5"])
    assert result.exit_code == 1, result.output
    assert "user_id=2" in result.output and "different" in result.output
    result = CliRunner().invoke(cli, ["-c", str(root), "audit", "--json", "-v", "history"])
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["ok"] is False
    assert [
        (d["key"], d["feature"], d["online_value"], d["offline_value"], d["reason"])
        for d in body["differences"]
    ] == [
        ({"user_id": 1}, "level", 10, 11, "stale"),
        ({"user_id": 1}, "tier", "a", "d", "stale"),
        ({"user_id": 2}, "level", 99, 20, "different"),
    ]


def test_missing_rows(repo: tuple[Path, FeatureStore]) -> None:
    _, store = repo
    view = store.get_feature_view("history")
    # the view's online storage lost (dropped and made again, empty)
    store.online_store.drop_view(store.project, view.storage_name)
    store.online_store.ensure_view(store.project, view)
    report = store.audit(sample=10)
    reasons = {
        (d.key["user_id"], d.feature): (d.reason, d.online_value, d.offline_value)
        for d in report.differences
    }
    # user 3's level is null offline: null online (no row) is the same value
    assert reasons == {
        (1, "level"): ("missing", None, 11),
        (1, "tier"): ("missing", None, "d"),
        (2, "level"): ("missing", None, 20),
        (2, "tier"): ("missing", None, "b"),
        (3, "tier"): ("missing", None, "c"),
    }


def test_rows_pushed_after_the_watermark(repo: tuple[Path, FeatureStore]) -> None:
    _, store = repo
    later = NOW - timedelta(minutes=30)
    from banquet.store import PushMode

    # pushed to both sides: the offline value at its own event time agrees
    store.push("pushed", _rows(2, later, 21, "b"), to=PushMode.ONLINE_AND_OFFLINE)
    assert store.audit(sample=10).ok
    # online only: reported, not an error unless strict
    store.push("pushed", _rows(1, later, 12, "d"))
    report = store.audit(sample=10)
    assert report.ok
    assert report.differences == [
        Difference("history", {"user_id": 1}, "level", 12, 11, NEWER_ONLINE, later, None, False)
    ]
    assert not store.audit(sample=10, strict=True).ok


def test_bad_arguments(repo: tuple[Path, FeatureStore]) -> None:
    _, store = repo
    with pytest.raises(InvalidArgument, match="sample"):
        store.audit(sample=0)
    sample = store.audit(sample=2, seed=7)
    assert sample.views[0].keys_checked == 2
    assert store.audit(sample=2, seed=7).views == sample.views


AGG_FEATURES = """\
from datetime import timedelta as td

from banquet import Entity, FeatureView, Field, FileSource
from banquet.aggregation import Aggregation as A
from banquet.types import Float64

user = Entity(name="user", join_keys=["user_id"])
events = FileSource(name="events", path="data/events.parquet", timestamp_field="ts")
spend = FeatureView(
    name="spend",
    entities=[user],
    schema=[Field(name="amount", dtype=Float64)],
    source=events,
    aggregations=[
        A("amount", "count", td(hours=1), td(minutes=10)),
        A("amount", "sum", td(hours=2), td(minutes=30)),
    ],
)
"""


def test_planted_stale_aggregated_value(backend: Backend, tmp_path: Path) -> None:
    """Tiles written back from before the key's newest rows (a lost materialization): the
    aggregates at the watermark differ and the tiles' newest event time is older than the
    key's newest offline row there, so every differing aggregate is ``stale``."""
    from banquet.online import tiles
    from banquet.online.base import rows_batch

    root = tmp_path / "agg"
    (root / "data").mkdir(parents=True)
    (root / "feature_store.yaml").write_text(
        f"project: {backend.project}\nregistry: data/registry.db\nprovider: local\n"
        + backend.yaml()
        + "offline_store:\n  type: file\n"
    )
    (root / "features.py").write_text(AGG_FEATURES)
    early, late = MARK - timedelta(minutes=100), MARK - timedelta(minutes=20)
    rows = pa.table(
        {
            "user_id": pa.array([1, 1, 1, 2], pa.int64()),
            "ts": pa.array([early, MARK - timedelta(minutes=50), late, late], US),
            "amount": pa.array([1.5, 2.0, 4.0, 8.0]),
        }
    )
    pq.write_table(rows, root / "data" / "events.parquet")
    store = FeatureStore(repo_path=root)
    try:
        store.apply()
        store.materialize(T1 - timedelta(days=1), MARK)
        assert store.audit(sample=10).ok
        view = store.get_feature_view("spend")
        # user 1's tiles rebuilt from its first row only and written over the stored ones
        first = rows.slice(0, 1)
        key_bytes, blobs = tiles.build(
            view,
            [first.column("user_id").combine_chunks()],
            first.column("ts").combine_chunks().cast(pa.int64()),
            None,
            {"amount": first.column("amount").combine_chunks()},
        )
        early_us = int(early.timestamp() * 1_000_000)
        store.online_store.write(
            store.project,
            view.storage_name,
            rows_batch(key_bytes, pa.array([early_us], pa.int64()), None, blobs),
            overwrite=True,
        )
        report = store.audit(sample=10)
        assert not report.ok
        got = [(d.key, d.feature, d.reason, d.online_ts, d.offline_ts) for d in report.errors]
        assert got == [
            ({"user_id": 1}, "count_amount_3600s", STALE, early, late),
            ({"user_id": 1}, "sum_amount_7200s", STALE, early, late),
        ], report.to_table()
        result = CliRunner().invoke(cli, ["-c", str(root), "audit"])
        assert result.exit_code == 1 and "stale" in result.output, result.output
    finally:
        store.teardown()
        store.online_store.close()
