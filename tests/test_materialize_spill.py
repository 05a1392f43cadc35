"""Materialization of a view larger than ``offline_store.memory_limit``: its rows are spilled
by key partition and reduced partition by partition; the online result is the same as the
in-memory path's, the intervals are recorded as usual, and no spill file is left behind."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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


def _materialize_and_count(root: str) -> None:
    """The child of the test below: a spilled materialization into SQLite, then the stored
    keys counted at once, while the checkpoint it held back runs in the background."""
    path = Path(root)
    store = open_store(path, "bus", memory_limit="256KiB", spill_dir=str(path / "spill"))
    store.materialize(START, T0 + timedelta(hours=300))  # every source row is inside
    want = pq.read_table(path / "src.parquet").column("user_id").unique()
    for view in ("by_user", "by_both"):
        (count,) = store.online_store.query(f'SELECT count(*) FROM "mspill:{view}"')[0]  # type: ignore[attr-defined]
        if view == "by_user":
            assert count == len(want), (count, len(want))
    print("counted", flush=True)


def test_the_online_store_is_read_back_right_after_a_spilled_materialization(
    tmp_path: Path,
) -> None:
    # benches/big_join.py died of SIGBUS here: it counted the keys with Python's sqlite3 in
    # the process that had just materialized. Two SQLite libraries in one process (banquet's
    # bundled one, Python's) do not see each other's POSIX locks, so sqlite3 reset the WAL
    # index under banquet's background checkpoint. The store's own ``query`` is the way; run
    # in a child so that a signal is a failure here, not the end of the test run.
    write_source(tmp_path / "src.parquet", 300_000, 60_000)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import test_materialize_spill as t; t._materialize_and_count(sys.argv[2])"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            code,
            str(Path(__file__).parent),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "counted" in run.stdout
    assert not any((tmp_path / "spill").iterdir())


def test_views_read_ahead_share_the_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two views are held at once (one written while the next is read ahead): each gets
    half of memory_limit, so a limit one view fits under alone spills when both run."""
    import banquet.materialize as m

    write_source(tmp_path / "src.parquet", 60_000, 8_000)
    plain = open_store(tmp_path, "plain")
    plain.materialize(START, END)
    # what the scan of by_user's window holds: its columns, rows in [START, END]
    src = pq.read_table(
        tmp_path / "src.parquet", columns=["user_id", "event_timestamp", "created", "x", "n", "s"]
    )
    ts = src.column("event_timestamp")
    one_view = src.filter(
        pc.and_(pc.greater_equal(ts, pa.scalar(START)), pc.less_equal(ts, pa.scalar(END)))
    ).nbytes
    seen: list[tuple[int, bool]] = []
    real = m.latest_rows

    def spy(store: FeatureStore, w: Any, share: int = 1) -> Any:
        out = real(store, w, share)
        seen.append((share, isinstance(out, m.SpilledWinners)))
        return out

    monkeypatch.setattr(m, "latest_rows", spy)
    # one view alone stays in memory (under half the limit), two at once spill
    limit = f"{one_view * 3 // 1024}KiB"
    spill = tmp_path / "spill"
    alone = open_store(tmp_path, "alone", memory_limit=limit, spill_dir=str(spill))
    alone.materialize(START, END, feature_views=["by_user"])
    assert seen == [(1, False)]
    seen.clear()
    both = open_store(tmp_path, "both", memory_limit=limit, spill_dir=str(spill))
    both.materialize(START, END)
    assert seen == [(2, True), (2, True)]
    assert online_rows(alone, "by_user") == online_rows(plain, "by_user")
    for view in ("by_user", "by_both"):
        assert online_rows(both, view) == online_rows(plain, view)
    assert not any(spill.iterdir())
