"""Materialization of a view larger than ``offline_store.memory_limit``: its rows are spilled
by key partition and reduced partition by partition; the online result is the same as the
in-memory path's, the intervals are recorded as usual, and no spill file is left behind."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from banquet.errors import InvalidTimestamp
from banquet.types import Float64, Int64, String

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1_000_000)
UTC_US = pa.timestamp("us", tz="UTC")
H_US = 3_600_000_000
START, END = T0, T0 + timedelta(hours=150)


def write_source(path: Path, n: int, keys: int, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(rng.integers(0, keys, n)),
                "city": pa.array([f"c{i}" for i in rng.integers(0, 4, n)]),
                "event_timestamp": pa.array(T0_US + rng.integers(0, 200 * H_US, n)).cast(UTC_US),
                "created": pa.array(T0_US + rng.integers(0, 2, n) * H_US).cast(UTC_US),
                "x": pa.array(rng.normal(size=n)),
                "n": pa.array(rng.integers(0, 100, n)),
                "s": pa.array([None if i % 5 == 0 else f"s{i}" for i in range(n)]),
            }
        ),
        path,
        row_group_size=max(n // 10, 1),
    )


def open_store(root: Path, name: str, **offline: Any) -> FeatureStore:
    cfg = RepoConfig.from_dict(
        {
            "project": "mspill",
            "registry": str(root / f"{name}-registry.db"),
            "online_store": {"type": "sqlite", "path": str(root / f"{name}-online.db")},
            "offline_store": {"type": "file", **offline},
        },
        repo_path=root,
    )
    store = FeatureStore(config=cfg)
    user = Entity(name="user", join_keys=["user_id"])
    city = Entity(name="city", join_keys=["city"])
    schema = [
        Field(name="x", dtype=Float64),
        Field(name="n", dtype=Int64),
        Field(name="s", dtype=String),
    ]
    src = FileSource(
        name="src",
        path="src.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    store.apply(
        [
            user,
            city,
            FeatureView(name="by_user", entities=[user], source=src, schema=schema),
            FeatureView(name="by_both", entities=[user, city], source=src, schema=schema),
        ]
    )
    return store


def online_rows(store: FeatureStore, view: str) -> list[tuple[Any, ...]]:
    return store.online_store.query(  # type: ignore[attr-defined,no-any-return]
        f'SELECT * FROM "mspill:{view}" ORDER BY entity_key'
    )


def test_spilled_materialization_writes_what_the_in_memory_one_writes(tmp_path: Path) -> None:
    write_source(tmp_path / "src.parquet", 60_000, 8_000)
    plain = open_store(tmp_path, "plain")
    plain.materialize(START, END)
    spill = tmp_path / "spill"
    tiny = open_store(tmp_path, "tiny", memory_limit="128KiB", spill_dir=str(spill))
    tiny.materialize(START, END)
    for view in ("by_user", "by_both"):
        want = online_rows(plain, view)
        assert len(want) > 7_000
        assert online_rows(tiny, view) == want
    done = plain.registry.read("mspill")["materializations"]
    assert tiny.registry.read("mspill")["materializations"] == done
    assert set(done) == {"by_user", "by_both"}
    assert not any(spill.iterdir())


def test_a_bad_row_refuses_the_view_before_anything_is_written(tmp_path: Path) -> None:
    write_source(tmp_path / "src.parquet", 30_000, 4_000)
    table = pq.read_table(tmp_path / "src.parquet")
    future = pa.array([T0_US + 10_000 * 24 * H_US], pa.int64()).cast(UTC_US)
    last = table.slice(table.num_rows - 1).set_column(2, "event_timestamp", future)
    pq.write_table(pa.concat_tables([table, last]), tmp_path / "src.parquet")
    spill = tmp_path / "spill"
    store = open_store(tmp_path, "bad", memory_limit="64KiB", spill_dir=str(spill))
    with pytest.raises(InvalidTimestamp):
        store.materialize(START, datetime(2100, 1, 1, tzinfo=timezone.utc), ["by_user"])
    assert online_rows(store, "by_user") == []
    assert not spill.exists() or not any(spill.iterdir())
