"""``apply`` records before it deletes: kill -9 at any point of an apply that reshapes or
removes views leaves either the old state with its data or the new state with nothing
claimed, on every online store (issue #12, part 4).

An apply runs in a subprocess that SIGKILLs itself at a named point (or is killed after a
random delay); the test then checks the registry and what is served, re-runs apply (which
finishes the interrupted cleanup) and materialize-incremental, and checks everything again.
The two repo versions alternate, so each crash starts from a fully materialized state.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import FeatureStore
from banquet.errors import BanquetError
from banquet.registry.base import PENDING_DROPS, current_storage

N = 10_000  # keys: a Redis drop of this many takes long enough to be killed in the middle
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
END = datetime(2024, 6, 1, tzinfo=timezone.utc)

HEAD = """\
from banquet import Entity, FeatureView, Field, FileSource
from banquet.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"])
"""
# v1: `stats` (a, b) and `extra` from data1; v2: `stats` reshaped (a, c) from data2, whose
# rows are a day OLDER than data1's (a leftover v1 row must not block them), `extra` removed.
VERSIONS = {
    1: HEAD
    + """
src1 = FileSource(name="src1", path="data/data1.parquet", timestamp_field="event_timestamp")
stats = FeatureView(name="stats", entities=[user], source=src1,
                    schema=[Field(name="a", dtype=Int64), Field(name="b", dtype=String)])
extra = FeatureView(name="extra", entities=[user], source=src1,
                    schema=[Field(name="e", dtype=Int64)])
""",
    2: HEAD
    + """
src2 = FileSource(name="src2", path="data/data2.parquet", timestamp_field="event_timestamp")
stats = FeatureView(name="stats", entities=[user], source=src2,
                    schema=[Field(name="a", dtype=Int64), Field(name="c", dtype=Float64)])
""",
}
FEATURES = {1: {"stats": ["a", "b"], "extra": ["e"]}, 2: {"stats": ["a", "c"]}}


def expected(version: int, view: str, feature: str) -> list[Any]:
    k = range(N)
    if version == 1:
        return {"a": [i * 10 for i in k], "b": [f"s{i}" for i in k], "e": [i + 1 for i in k]}[
            feature
        ]
    return {"a": [i * 10 + 1 for i in k], "c": [i / 2 for i in k]}[feature]


# Applies, each in a process of its own: a helper imports banquet once, then forks a child
# per line "repo point" read from stdin (a fresh interpreter per apply cost ~0.8 s). The
# child prints "ready PID" before it applies, so a random kill lands in the apply; the
# helper then prints "done EXITCODE" (-9: killed).
APPLIER = textwrap.dedent(
    """
    import os, signal, sys, traceback
    from banquet import FeatureStore

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def apply(repo, point):
        store = FeatureStore(repo_path=repo)
        reg, online = store.registry, store.online_store
        real_update, real_create, real_drop = reg.update, online.create_view, online.drop_view
        updates = []

        def update(project, change):
            updates.append(1)
            if point == "before_record" and len(updates) == 1:
                die()
            if point == "before_clear" and len(updates) == 2:
                die()
            out = real_update(project, change)
            if point == "after_record" and len(updates) == 1:
                die()
            return out

        def create_view(project, view):
            real_create(project, view)
            if point == "after_create":
                die()

        def drop_view(project, name):
            if point == "drop_start":
                die()
            real_drop(project, name)
            if point == "drop_mid":
                die()  # SQLite, Postgres: one atomic DROP TABLE; Redis: see below

        reg.update, online.create_view, online.drop_view = update, create_view, drop_view
        if point == "drop_mid" and hasattr(online, "_each_key_batch"):
            # Redis: SCAN + HDEL batch by batch; die once the first batch is deleted
            real_batches = online._each_key_batch

            def each_key_batch(topo, project, action):
                calls = []

                def counted(pipe, keys):
                    calls.append(1)
                    if len(calls) == 2:
                        die()
                    action(pipe, keys)

                real_batches(topo, project, counted)

            online._each_key_batch = each_key_batch
        print("ready", os.getpid(), flush=True)
        store.apply()

    for line in sys.stdin:
        repo, point = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0 if point == "random" else 3  # 3: the kill point was never reached
            try:
                apply(repo, point)
            except BaseException:
                traceback.print_exc()
                code = 4
            sys.stdout.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("done", os.waitstatus_to_exitcode(status), flush=True)
    """
)


@pytest.fixture(scope="module")
def applier() -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-c", APPLIER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)
    proc.stdout.close()


def write_sources(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    keys = pa.array(range(N), pa.int64())

    def ts(t: datetime) -> pa.Array:
        return pa.array([t] * N, pa.timestamp("us", tz="UTC"))

    pq.write_table(
        pa.table(
            {
                "user_id": keys,
                "event_timestamp": ts(T0 + timedelta(days=1)),
                "a": pa.array(expected(1, "stats", "a"), pa.int64()),
                "b": pa.array(expected(1, "stats", "b")),
                "e": pa.array(expected(1, "extra", "e"), pa.int64()),
            }
        ),
        data / "data1.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "user_id": keys,
                "event_timestamp": ts(T0),
                "a": pa.array(expected(2, "stats", "a"), pa.int64()),
                "c": pa.array(expected(2, "stats", "c"), pa.float64()),
            }
        ),
        data / "data2.parquet",
    )


def make_repo(backend: Any, root: Path) -> Path:
    root.mkdir()
    if backend.kind == "postgres":  # the SQL registry, in the test's own schema
        registry = (
            f"registry:\n  registry_type: sql\n  path: {backend.pg_dsn}?schema={backend.schema}\n"
        )
    else:
        registry = "registry: data/registry.db\n"
    (root / "feature_store.yaml").write_text(
        f"project: {backend.project}\n{registry}provider: local\n{backend.yaml()}"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    write_sources(root / "data")
    return root


_OPEN: list[FeatureStore] = []


def open_store(repo: Path) -> FeatureStore:
    """A FeatureStore whose online store the ``_close_stores`` fixture closes."""
    fs = FeatureStore(repo_path=repo)
    _OPEN.append(fs)
    return fs


@pytest.fixture
def close_stores() -> Any:
    """Requested after the backend, so the stores close before it is cleaned up."""
    yield
    while _OPEN:
        fs = _OPEN.pop()
        if fs._online is not None:
            fs._online.close()


def use_version(repo: Path, version: int) -> None:
    (repo / "features.py").write_text(VERSIONS[version])


def run_apply(applier: Any, repo: Path, point: str, rng: random.Random) -> None:
    """An apply of ``repo`` killed at ``point`` (its errors go to the test's stderr)."""
    applier.stdin.write(f"{repo} {point}\n")
    applier.stdin.flush()
    word, pid = applier.stdout.readline().split()
    assert word == "ready"
    if point == "random":
        time.sleep(rng.uniform(0.0, 0.3))
        with contextlib.suppress(ProcessLookupError):  # it finished already
            os.kill(int(pid), signal.SIGKILL)
    word, code = applier.stdout.readline().split()
    assert word == "done"
    if int(code) != -signal.SIGKILL and not (point == "random" and code == "0"):
        pytest.fail(f"apply at {point!r} exited with {code} instead of being killed")


def served(fs: FeatureStore, version: int, view: str) -> tuple[set[str], dict[str, list[Any]]]:
    refs = [f"{view}:{f}" for f in FEATURES[version][view]]
    resp = fs.get_online_features(refs, {"user_id": list(range(N))})
    statuses = {s for f in FEATURES[version][view] for s in resp.statuses[f]}
    return statuses, resp.to_dict()


def check_crashed(repo: Path, project: str, old: int, new: int, intervals: dict[str, Any]) -> int:
    """The invariant after a kill: the registry holds exactly one of the versions; the old one
    with its intervals and every value, or the new one with no interval and nothing served."""
    fs = open_store(repo)
    state = fs.registry.read(project)
    views = {n: [f["name"] for f in r["features"]] for n, r in state["feature_views"].items()}
    at = old if views == FEATURES[old] else new
    assert views == FEATURES[at], f"registry holds neither version: {views}"
    for view in FEATURES[at]:
        statuses, values = served(fs, at, view)
        if at == old:
            assert state["materializations"].get(view) == intervals[view]
            assert statuses == {"PRESENT"}, f"{view}: old state lost values: {statuses}"
            for f in FEATURES[at][view]:
                assert values[f] == expected(at, view, f)
        else:  # nothing claimed, nothing served (no old-schema value decoded as new)
            assert view not in state["materializations"]
            assert statuses == {"NOT_FOUND"}, f"{view}: {statuses}"
    return at


def storage_names(fs: FeatureStore, project: str) -> set[str]:
    state = fs.registry.read(project)
    return {current_storage(state, n) for n in state["feature_views"]}


def check_storage(backend: Any, fs: FeatureStore, project: str, retired: set[str]) -> None:
    """Only the registered views' current storage is left: SQLite and Postgres tables are
    listed; on Redis every key is read under each retired name (one round trip per node)."""
    names = storage_names(fs, project)
    assert not names & retired
    if not backend.is_redis:
        assert backend.owned(project) == {f"{project}:{n}" for n in names}
        return
    if not retired:
        return
    from banquet import _core

    keys = _core.serialize_entity_keys(["user_id"], [pa.array(range(N), pa.int64())])
    keys = keys.to_pylist()
    blobs = fs.online_store.read(project, [(name, keys) for name in sorted(retired)])
    assert all(b is None for per_name in blobs for b in per_name)
    assert len(backend.redis_keys(f"{project}:*".encode())) == N  # no hash left over


def recover(backend: Any, repo: Path, version: int, retired: set[str]) -> set[str]:
    """Re-run apply (it finishes the interrupted cleanup) and materialize-incremental: every
    key gets the version's values, and no ``retired`` storage is left. Returns the current
    storage names."""
    fs = open_store(repo)
    fs.apply()
    project = backend.project
    assert PENDING_DROPS not in fs.registry.read(project)
    fs.materialize_incremental(END)
    for view in FEATURES[version]:
        statuses, values = served(fs, version, view)
        assert statuses == {"PRESENT"}, f"{view}: {statuses}"
        for f in FEATURES[version][view]:
            assert values[f] == expected(version, view, f)
    check_storage(backend, fs, project, retired)
    return storage_names(fs, project)


POINTS = [
    "before_record",  # nothing written yet
    "after_create",  # the new storage exists, the registry still old
    "after_record",  # the registry is new, no row dropped yet
    "drop_start",
    "drop_mid",  # some old rows dropped, some not (Redis: SCAN + HDEL in batches)
    "before_clear",  # dropped, the pending list not yet cleared
    "random",
]


@pytest.mark.slow
def test_kill_9_during_apply_leaves_old_or_new_state(
    backend: Any, tmp_path: Path, applier: Any, close_stores: None
) -> None:
    repo = make_repo(backend, tmp_path / "repo")
    use_version(repo, 1)
    used = recover(backend, repo, 1, set())
    rng = random.Random(4)
    current, kept_old = 1, {}
    for point in POINTS:
        target = 3 - current
        intervals = open_store(repo).registry.read(backend.project)["materializations"]
        use_version(repo, target)
        run_apply(applier, repo, point, rng)
        at = check_crashed(repo, backend.project, current, target, intervals)
        kept_old[point] = at == current
        used |= recover(backend, repo, target, used)
        current = target
    # the registry changes in one step, before any stored row is dropped
    kept_old.pop("random")
    assert kept_old == {p: p in ("before_record", "after_create") for p in kept_old}


# --- the parts, on SQLite (fast) --------------------------------------------------------


@pytest.fixture
def sqlite_repo(make_backend: Any, tmp_path: Path, close_stores: None) -> tuple[Any, Path]:
    backend = make_backend("sqlite")
    repo = make_repo(backend, tmp_path / "repo")
    use_version(repo, 1)
    return backend, repo


def test_a_removed_view_added_again_gets_new_storage(sqlite_repo: tuple[Any, Path]) -> None:
    backend, repo = sqlite_repo
    fs = open_store(repo)
    fs.apply()
    project = backend.project
    assert storage_names(fs, project) == {"stats", "extra"}
    use_version(repo, 2)  # extra removed, stats reshaped
    open_store(repo).apply()
    use_version(repo, 1)  # both again: neither may reuse a retired name
    fs = open_store(repo)
    fs.apply()
    assert storage_names(fs, project) == {"stats@2", "extra@1"}
    assert backend.owned(project) == {f"{project}:stats@2", f"{project}:extra@1"}


def test_a_description_change_keeps_the_data(sqlite_repo: tuple[Any, Path]) -> None:
    backend, repo = sqlite_repo
    fs = open_store(repo)
    fs.apply()
    fs.materialize_incremental(END)
    before = fs.registry.read(backend.project)["materializations"]
    text = VERSIONS[1].replace(
        'Field(name="e", dtype=Int64)', 'Field(name="e", dtype=Int64, description="x")'
    )
    (repo / "features.py").write_text(text)
    fs = open_store(repo)
    assert fs.apply().changed == {"feature_views": {"extra": ["features"]}}
    assert fs.registry.read(backend.project)["materializations"] == before
    assert served(fs, 1, "extra")[0] == {"PRESENT"}


def test_materialize_racing_a_reshaping_apply_records_nothing(
    sqlite_repo: tuple[Any, Path],
) -> None:
    backend, repo = sqlite_repo
    open_store(repo).apply()
    stale = open_store(repo)
    stale.catalog()  # holds v1's definitions (cached)
    use_version(repo, 2)
    open_store(repo).apply()
    with pytest.raises(BanquetError, match="changed by an apply while it was being materialized"):
        stale.materialize(T0, END, ["stats"])
    assert "stats" not in stale.registry.read(backend.project)["materializations"]


def test_teardown_forgets_the_registry_before_the_data(sqlite_repo: tuple[Any, Path]) -> None:
    backend, repo = sqlite_repo
    fs = open_store(repo)
    fs.apply()
    fs.materialize_incremental(END)
    order: list[str] = []
    real_delete, real_teardown = fs.registry.delete_project, fs.online_store.teardown
    fs.registry.delete_project = lambda p: (order.append("registry"), real_delete(p))[1]  # type: ignore[method-assign]
    fs.online_store.teardown = lambda p: (order.append("store"), real_teardown(p))[1]  # type: ignore[method-assign]
    fs.teardown()
    assert order == ["registry", "store"]
    assert backend.owned(backend.project) == set()


def test_a_failed_drop_warns_and_the_next_apply_finishes_it(
    sqlite_repo: tuple[Any, Path],
) -> None:
    from banquet.errors import StoreUnavailable

    backend, repo = sqlite_repo
    project = backend.project
    open_store(repo).apply()
    use_version(repo, 2)
    fs = open_store(repo)

    def unavailable(project: str, name: str) -> None:
        raise StoreUnavailable("the store went away")

    fs.online_store.drop_view = unavailable  # type: ignore[method-assign]
    with pytest.warns(UserWarning, match=r"run `banquet apply` again"):
        fs.apply()
    state = fs.registry.read(project)
    assert state[PENDING_DROPS] == ["extra", "stats"]
    assert f"{project}:stats" in backend.owned(project)  # still there, never read
    assert served(fs, 2, "stats")[0] == {"NOT_FOUND"}
    fs = open_store(repo)
    assert fs.apply().empty  # nothing to change, but the drops are finished
    assert PENDING_DROPS not in fs.registry.read(project)
    assert backend.owned(project) == {f"{project}:stats@1"}


def test_a_source_description_change_keeps_the_data(sqlite_repo: tuple[Any, Path]) -> None:
    backend, repo = sqlite_repo
    fs = open_store(repo)
    fs.apply()
    fs.materialize_incremental(END)
    before = fs.registry.read(backend.project)["materializations"]
    text = VERSIONS[1].replace(
        'timestamp_field="event_timestamp")',
        'timestamp_field="event_timestamp", description="new")',
    )
    (repo / "features.py").write_text(text)
    fs = open_store(repo)
    assert fs.apply().changed["feature_views"] == {"stats": ["source"], "extra": ["source"]}
    assert fs.registry.read(backend.project)["materializations"] == before
    assert served(fs, 1, "stats")[0] == {"PRESENT"}
