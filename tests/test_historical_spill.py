"""The partitioned join that spills to disk (``offline_store.memory_limit``): the same output
as the in-memory join, streamed by ``to_arrow_batches`` / ``to_parquet``, and no spill file
left behind after success, an error or Ctrl-C. The brute-force property test of
``test_historical.py`` runs over both paths as well."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, _core
from banquet.config import parse_size
from banquet.errors import ConfigError, KernelError, SchemaMismatch
from banquet.offline import join
from banquet.offline.base import OfflineStore
from banquet.types import Float64, Int64, String

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1_000_000)
UTC_US = pa.timestamp("us", tz="UTC")
H_US = 3_600_000_000


def write_sources(root: Path, n_rows: int, n_keys: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    for name in ("a", "b"):
        ts = T0_US + rng.integers(0, 200 * H_US, n_rows)
        created = pa.array(T0_US + rng.integers(0, 3, n_rows) * H_US, pa.int64()).cast(UTC_US)
        pq.write_table(
            pa.table(
                {
                    "user_id": pa.array(rng.integers(0, n_keys, n_rows)),
                    "city": pa.array([f"c{i}" for i in rng.integers(0, 3, n_rows)]),
                    "event_timestamp": pa.array(ts, pa.int64()).cast(UTC_US),
                    "created": created,
                    "x": pa.array(rng.normal(size=n_rows)),
                    "s": pa.array([None if i % 7 == 0 else f"v{i}" for i in range(n_rows)]),
                }
            ),
            root / f"{name}.parquet",
            row_group_size=max(n_rows // 8, 1),
        )


def open_store(root: Path, name: str, **offline: Any) -> FeatureStore:
    cfg = RepoConfig.from_dict(
        {
            "project": "spill",
            "registry": str(root / f"{name}-registry.db"),
            "online_store": {"type": "sqlite", "path": str(root / f"{name}-online.db")},
            "offline_store": {"type": "file", **offline},
        },
        repo_path=root,
    )
    store = FeatureStore(config=cfg)
    user = Entity(name="user", join_keys=["user_id"])
    city = Entity(name="city", join_keys=["city"])
    views = [
        FeatureView(
            name="va",
            entities=[user],
            ttl=timedelta(hours=24),
            source=FileSource(
                name="a",
                path="a.parquet",
                timestamp_field="event_timestamp",
                created_timestamp_column="created",
            ),
            schema=[Field(name="x", dtype=Float64), Field(name="s", dtype=String)],
        ),
        FeatureView(  # two keys, one a string; no ttl
            name="vb",
            entities=[user, city],
            source=FileSource(name="b", path="b.parquet", timestamp_field="event_timestamp"),
            schema=[Field(name="x", dtype=Float64), Field(name="s", dtype=String)],
        ),
    ]
    store.apply([user, city, *views])
    return store


FEATURES = ["va:x", "va:s", "vb:x", "vb:s"]


def entity_rows(n: int, n_keys: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    keys = rng.integers(-5, n_keys + 5, n).astype(object)  # some keys match nothing
    keys[::97] = None  # a null key gets nulls
    return pa.table(
        {
            "user_id": pa.array(list(keys), pa.int64()),
            "city": pa.array([f"c{i}" for i in rng.integers(0, 3, n)]),
            "event_timestamp": pa.array(T0_US + rng.integers(0, 220 * H_US, n), pa.int64()).cast(
                UTC_US
            ),
            "label": pa.array(np.arange(n)),
        }
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spill")
    write_sources(root, 40_000, 3_000)
    return root


def test_spilled_join_equals_the_in_memory_join_and_streams(repo: Path) -> None:
    entity = entity_rows(5_000, 3_000)
    want = (
        open_store(repo, "mem")
        .get_historical_features(entity, FEATURES, full_feature_names=True)
        .to_arrow()
    )
    spill = repo / "spill-ok"
    store = open_store(repo, "tiny", memory_limit="256KiB", spill_dir=str(spill))
    job = store.get_historical_features(entity, FEATURES, full_feature_names=True)
    batches = list(job.to_arrow_batches())
    assert len(batches) > 1  # streamed in chunks (1024 rows each at this limit)
    got = pa.Table.from_batches(batches)
    assert got.schema == want.schema
    assert got.equals(want)
    assert got.column("va__x").null_count < len(got) // 2  # most rows match
    assert not any(spill.iterdir())
    out = repo / "train.parquet"
    store.get_historical_features(entity, FEATURES, full_feature_names=True).to_parquet(str(out))
    assert pq.read_table(out).equals(want)
    assert (
        store.get_historical_features(entity, FEATURES, full_feature_names=True)
        .to_arrow()
        .equals(want)
    )
    assert not any(spill.iterdir())


@pytest.fixture
def join_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads ``historical`` calls ``join_view`` on, in call order."""
    from banquet import historical

    callers: list[int] = []
    real = historical.join_view

    def spy(*a: Any, **k: Any) -> Any:
        callers.append(threading.get_ident())
        return real(*a, **k)

    monkeypatch.setattr(historical, "join_view", spy)
    return callers


@pytest.mark.parametrize("limit", [None, "1MiB"])
def test_small_views_side_by_side_equal_one_at_a_time(
    repo: Path, monkeypatch: pytest.MonkeyPatch, join_threads: list[int], limit: str | None
) -> None:
    """Views with small sources are joined on threads (in memory, or spilling into one
    shared spill folder); the result is the one-view-at-a-time result."""
    from banquet import historical

    entity = entity_rows(4_000, 3_000, seed=11)
    spill = repo / f"spill-side-{limit}"
    opts: dict[str, Any] = {"spill_dir": str(spill)}
    if limit:
        opts["memory_limit"] = limit
    store = open_store(repo, f"side-{limit}", **opts)
    side = store.get_historical_features(entity, FEATURES, full_feature_names=True).to_arrow()
    assert (
        len(join_threads) == 2 and threading.get_ident() not in join_threads
    )  # on the pool's threads
    if limit:
        assert spill.exists()  # the views spilled
    monkeypatch.setattr(historical, "SMALL_VIEW_ROWS", 0)
    join_threads.clear()
    one = store.get_historical_features(entity, FEATURES, full_feature_names=True).to_arrow()
    assert join_threads == [threading.get_ident()] * 2
    assert side.equals(one)
    assert not spill.exists() or not any(spill.iterdir())


def test_views_stay_one_at_a_time_when_their_results_fill_the_budget(
    repo: Path, join_threads: list[int]
) -> None:
    store = open_store(repo, "side-full", memory_limit="256KiB")  # 4 x 8 B x 4k rows > half
    entity = entity_rows(4_000, 3_000, seed=11)
    got = store.get_historical_features(entity, FEATURES, full_feature_names=True).to_arrow()
    assert got.num_rows == 4_000
    assert join_threads == [threading.get_ident()] * 2


def test_oversized_partitions_are_split_again(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entity = entity_rows(3_000, 3_000, seed=5)
    want = (
        open_store(repo, "mem2")
        .get_historical_features(entity, FEATURES, full_feature_names=True)
        .to_arrow()
    )
    monkeypatch.setattr(join, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(join, "MAX_SPLITS", 2)
    store = open_store(repo, "split", memory_limit="64KiB", spill_dir=str(repo / "sp2"))
    assert (
        store.get_historical_features(entity, FEATURES, full_feature_names=True)
        .to_arrow()
        .equals(want)
    )
    assert not any((repo / "sp2").iterdir())


def test_spill_files_are_removed_after_an_error(repo: Path) -> None:
    spill = repo / "spill-err"
    store = open_store(repo, "err", memory_limit="1KiB", spill_dir=str(spill))
    bad = FeatureView(  # s is a string column: the declared Int64 fails after the join
        name="bad",
        entities=[Entity(name="user", join_keys=["user_id"])],
        source=FileSource(name="a2", path="a.parquet", timestamp_field="event_timestamp"),
        schema=[Field(name="s", dtype=Int64)],
    )
    store.apply([bad])
    with pytest.raises(SchemaMismatch, match="'s'"):
        store.get_historical_features(entity_rows(2_000, 3_000), ["bad:s"]).to_arrow()
    assert spill.exists() and not any(spill.iterdir())
    # an abandoned stream cleans up too
    it = store.get_historical_features(
        entity_rows(2_000, 3_000), FEATURES, full_feature_names=True
    ).to_arrow_batches()
    next(it)
    assert any(spill.iterdir())
    it.close()  # type: ignore[attr-defined]  # a generator
    assert not any(spill.iterdir())


INTERRUPTED = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_historical_spill import FEATURES, entity_rows, open_store, write_sources
root = Path({root!r})
store = open_store(root, "int", memory_limit="64KiB", spill_dir={spill!r})
print("ready", flush=True)
store.get_historical_features(entity_rows(150_000, 100_000), FEATURES, full_feature_names=True).to_arrow()
print("finished", flush=True)
"""


def test_spill_files_are_removed_on_ctrl_c(tmp_path: Path) -> None:
    write_sources(tmp_path, 300_000, 100_000)
    spill = tmp_path / "spill-int"
    code = INTERRUPTED.format(
        tests=str(Path(__file__).parent), root=str(tmp_path), spill=str(spill)
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BANQUET_THREADS": "1"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not any(spill.glob("banquet-spill-*/*")):  # mid-way: spill files exist
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "finished" not in out
    assert "KeyboardInterrupt" in err, err[-2000:]
    assert not any(spill.iterdir())


def test_join_partition_is_the_as_of_join_on_one_partition() -> None:
    rng = np.random.default_rng(1)
    n_e, n_f = 500, 2_000
    ek = pa.array(rng.integers(0, 50, n_e))
    ets = pa.array(rng.integers(0, 1_000, n_e))
    fk = pa.array(rng.integers(0, 50, n_f))
    fts = pa.array(rng.integers(0, 1_000, n_f))
    created = pa.array(rng.integers(0, 3, n_f))
    val = pa.array([f"v{i}" for i in range(n_f)])
    entity = pa.record_batch([ek, ets, pa.array(np.arange(n_e) * 10)], ["k", "ts", "row_id"])
    features = pa.record_batch([fk, fts, created, val], ["k", "ts", "created", "v"])
    out = _core.join_partition(entity, features, 1, True, 100)
    idx = _core.asof_join([ek], ets, [fk], fts, created, 100)
    assert out.schema.names == ["row_id", "v"]
    assert out.column(0).equals(entity.column(2))
    assert out.column(1).equals(val.take(idx))
    # the partitions of both sides, joined one by one, give the same rows
    n = 5
    got: dict[int, Any] = {}
    parts: list[list[pa.RecordBatch]] = []
    for b in (entity, features):
        order, offsets = _core.partition_order(_core.partition_ids([b.column(0)], n), n)
        sorted_b = b.take(order)
        parts.append([sorted_b.slice(offsets[p], offsets[p + 1] - offsets[p]) for p in range(n)])
    for e, f in zip(*parts):
        res = _core.join_partition(e, f, 1, True, 100)
        got.update(zip(res.column(0).to_pylist(), res.column(1).to_pylist()))
    assert [got[i * 10] for i in range(n_e)] == val.take(idx).to_pylist()
    with pytest.raises(KernelError, match="row id"):
        _core.join_partition(entity.select([0, 1]), features, 1, True, None)


def test_partition_ids_agree_across_key_layouts() -> None:
    a = _core.partition_ids([pa.array([1, 2, 3, None], pa.int64())], 8)
    b = _core.partition_ids([pa.array([1, 2, 3, None], pa.int32())], 8)
    assert a.equals(b) and a[3].as_py() == 8
    s = _core.partition_ids([pa.array(["x", "y"]), pa.array([1, 2])], 4, seed=2)
    ls = _core.partition_ids([pa.array(["x", "y"], pa.large_string()), pa.array([1, 2])], 4, 2)
    assert s.equals(ls)
    with pytest.raises(KernelError):
        _core.partition_ids([pa.array([1])], 0)


def test_memory_limit_sizes() -> None:
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("2GB") == 2_000_000_000
    assert parse_size(" 2 gib ") == 2 << 30
    assert parse_size(4096) == 4096
    cfg = RepoConfig.from_dict({"project": "p", "offline_store": {"memory_limit": 1 << 30}})
    assert cfg.offline_store.memory_limit_bytes == 1 << 30
    assert RepoConfig.from_dict({"project": "p"}).offline_store.memory_limit_bytes > 0
    with pytest.raises(ConfigError, match="memory_limit.*'lots'.*2GiB"):
        RepoConfig.from_dict({"project": "p", "offline_store": {"memory_limit": "lots"}})
    with pytest.raises(ConfigError, match="unknown key 'offline_store.memory'"):
        RepoConfig.from_dict({"project": "p", "offline_store": {"memory": "1GiB"}})


def test_default_scan_view_semi_join(tmp_path: Path) -> None:
    """The default ``scan_view`` keeps the rows whose key occurs among the entity keys; when
    a strided sample shows nearly every row would be kept, it skips the filter (the extra
    rows can match nothing)."""
    n = 300_000
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(np.arange(n) % 50_000),
                "city": pa.array(["c0"] * n),
                "event_timestamp": pa.array(np.full(n, T0_US)).cast(UTC_US),
                "created": pa.array(np.full(n, T0_US)).cast(UTC_US),
                "x": pa.array(np.ones(n)),
                "s": pa.array(["v"] * n),
            }
        ),
        tmp_path / "a.parquet",
    )
    pq.write_table(pq.read_table(tmp_path / "a.parquet"), tmp_path / "b.parquet")
    store = open_store(tmp_path, "scan")
    view = store.get_feature_view("va")
    few = [pa.array([3, 7, None, 3], pa.int64())]
    # the base class's default, which the file store overrides with its exact Rust scan
    default_scan = partial(OfflineStore.scan_view, store.offline_store)
    got = default_scan(view, view.features, None, None, entity_keys=few)
    table = got.read_all()
    assert table.num_rows == 12  # 6 rows per key, null never matches
    assert set(table.column("user_id").to_pylist()) == {3, 7}
    assert table.column_names == ["user_id", "event_timestamp", "created", "x", "s"]
    most = [pa.array(np.arange(49_000), pa.int64())]
    kept = default_scan(view, view.features, None, None, entity_keys=most)
    assert kept.read_all().num_rows == n  # 98% would be kept: not filtered
    exact = store.offline_store.scan_view(view, view.features, None, None, entity_keys=most)
    assert exact.read_all().num_rows == 6 * 49_000  # the file store's Rust scan filters
    two = store.get_feature_view("vb")  # two keys, one a string
    keys = [pa.array([3, 4], pa.int64()), pa.array(["c0", "c9"])]
    rows = default_scan(two, two.features, None, None, entity_keys=keys)
    assert rows.read_all().column("user_id").to_pylist() == [3] * 6
