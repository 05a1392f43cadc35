"""``overwrite``: a write that replaces the stored row whatever its event time (the way back
from a wrongly future-dated value), on every online store (sqlite, redis, redis_cluster,
postgres), through both store entry points and the feature store's push / write /
materialize."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from store_support import view

from banquet import FeatureStore
from banquet.errors import InvalidTimestamp
from banquet.online.base import rows_batch

if TYPE_CHECKING:
    from conftest import Backend

UTC = timezone.utc
US = pa.timestamp("us", tz="UTC")
FUTURE = 2**62  # far past any real event time


@pytest.mark.parametrize("rows", [3, 1500], ids=["small", "bulk"])  # Postgres: COPY from 1000
def test_overwrite_replaces_newer_rows_on_every_store(backend: Backend, rows: int) -> None:
    store = backend.open()
    p = backend.project
    store.create_view(p, view("v"))
    keys = [b"k%d" % i for i in range(rows)]
    n = len(keys)
    store.write(p, "v", rows_batch(keys, [FUTURE] * n, [0] * n, [b"wrong"] * n))
    store.write(p, "v", rows_batch(keys, [5] * n, [0] * n, [b"plain"] * n))
    assert store.read(p, [("v", keys[:2])]) == [[b"wrong", b"wrong"]]  # newer event kept

    store.write(p, "v", rows_batch(keys[:1], [5], [0], [b"fixed"]), overwrite=True)
    arrays = [
        pa.array(keys[1:], pa.binary()),
        pa.array([4] * (n - 1), pa.int64()).cast(US),
        None,
        pa.array([b"fixed too"] * (n - 1), pa.binary()),
    ]
    store.write(p, "v", rows_batch(*arrays), overwrite=True)
    assert store.read(p, [("v", keys[:2])]) == [[b"fixed", b"fixed too"]]
    assert store.read(p, [("v", keys[-1:])]) == [[b"fixed too"]]
    # plain writes keep newer-wins afterwards
    store.write(p, "v", rows_batch(keys[:1], [3], [0], [b"older"]))
    assert store.read(p, [("v", keys[:1])]) == [[b"fixed"]]
    # a new key under overwrite is simply written
    store.write(p, "v", rows_batch([b"new"], [1], [0], [b"n"]), overwrite=True)
    assert store.read(p, [("v", [b"new"])]) == [[b"n"]]


def test_overwrite_with_a_key_ttl_on_redis(redis_backend: Backend) -> None:
    store = redis_backend.open(key_ttl_seconds=3600)
    p = redis_backend.project
    store.create_view(p, view("v"))
    store.write(p, "v", rows_batch([b"k"], [FUTURE], [0], [b"wrong"]))
    store.write(p, "v", rows_batch([b"k"], [1], [0], [b"fixed"]), overwrite=True)
    assert store.read(p, [("v", [b"k"])]) == [[b"fixed"]]
    key = f"{p}:".encode() + b"k"
    assert 0 < redis_backend.redis_client().ttl(key) <= 3600


FEATURES = """\
from banquet import Entity, FeatureView, Field, FileSource, PushSource
from banquet.types import Int64

user = Entity(name="user", join_keys=["user_id"])
levels = FileSource(name="levels", path="data/levels.parquet", timestamp_field="event_timestamp")
pushed = PushSource(name="pushed", batch_source=levels)
history = FeatureView(name="history", entities=[user], schema=[Field(name="level", dtype=Int64)],
                      source=pushed)
"""


def test_feature_store_overwrite_paths_on_every_store(backend: Backend, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=1)
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "feature_store.yaml").write_text(
        f"project: {backend.project}\nregistry: data/registry.db\nprovider: local\n"
        + "".join(line for line in backend.yaml().splitlines(True) if "max_future_skew" not in line)
        + "  max_future_skew: null\noffline_store:\n  type: file\n"
    )
    (root / "features.py").write_text(FEATURES)
    table = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": pa.array([t0, t0], US),
            "level": pa.array([10, 20], pa.int64()),
        }
    )
    pq.write_table(table, root / "data" / "levels.parquet")
    store = FeatureStore(repo_path=root)
    store.apply()
    wrong = table.set_column(1, "event_timestamp", pa.array([datetime(2200, 1, 1)] * 2, US))
    wrong = wrong.set_column(2, "level", pa.array([-1, -1], pa.int64()))
    rows = [{"user_id": 1}, {"user_id": 2}]

    def levels() -> list[int | None]:
        return store.get_online_features(["history:level"], rows).to_dict()["level"]  # type: ignore[no-any-return]

    try:
        store.write_to_online_store("history", wrong)
        store.materialize(t0 - timedelta(days=1), now)
        assert levels() == [-1, -1]
        store.materialize(t0 - timedelta(days=1), now, overwrite=True)
        assert levels() == [10, 20]

        store.push("pushed", wrong)
        store.push("pushed", table, overwrite=True)
        assert levels() == [10, 20]
        store.write_to_online_store("history", wrong)
        store.write_to_online_store("history", table, overwrite=True)
        assert levels() == [10, 20]
        with pytest.raises(InvalidTimestamp):  # the range check holds on every store
            far = table.set_column(1, "event_timestamp", pa.array([datetime(9999, 1, 1)] * 2, US))
            store.push("pushed", far, overwrite=True)
        assert levels() == [10, 20]
    finally:
        store.teardown()
        store.online_store.close()
