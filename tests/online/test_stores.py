"""Every online store (sqlite, redis, redis_cluster, postgres) against one suite: round trips, newer event
wins, multi-view reads, missing keys, drop_view, teardown of one project only, materialize +
get_online_features end to end; then each server store's own layout, configuration and
behaviour when its server goes away (a typed ``StoreUnavailable``, quickly, never a hang)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from banquet import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig
from banquet.config import PostgresOnlineConfig, RedisOnlineConfig
from banquet.errors import ConfigError, StoreError, StoreUnavailable
from banquet.online.base import OnlineStore
from banquet.online.postgres import VIEWS_TABLE, PostgresOnlineStore, table_name
from banquet.online.redis import RedisOnlineStore, parse_connection_string
from banquet.types import Int64

if TYPE_CHECKING:
    from conftest import Backend, TcpProxy, ThrowawayCluster


MakeRepo = Callable[..., Path]
UTC = timezone.utc
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def view(name: str) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[Entity(name="user", join_keys=["user_id"])],
        schema=[Field(name="x", dtype=Int64)],
        source=FileSource(path="data/x.parquet", timestamp_field="ts"),
    )


@pytest.fixture
def store(backend: Backend) -> OnlineStore:
    s = backend.open()
    s.create_view(backend.project, view("v"))
    return s


def write(
    store: OnlineStore, project: str, rows: list[tuple[bytes, int, int, bytes]], v: str = "v"
) -> None:
    keys, ev, cr, blobs = (list(c) for c in zip(*rows, strict=True))
    store.write(project, v, keys, ev, cr, blobs)


def read1(store: OnlineStore, project: str, keys: list[bytes], v: str = "v") -> list[bytes | None]:
    return store.read(project, [(v, keys)])[0]


# --- write and read ------------------------------------------------------------------------------


def test_write_then_read(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    write(store, p, [(b"k1", 10, 0, b"one"), (b"k2", 20, 5, b"two")])
    assert read1(store, p, [b"k2", b"missing", b"k1", b"k2"]) == [b"two", None, b"one", b"two"]
    assert read1(store, p, [b"k1"]) == [b"one"]  # the single-key path
    assert read1(store, p, [b"nope"]) == [None]
    assert read1(store, p, []) == []
    assert store.read(p, []) == []
    store.write(p, "v", [], [], [], [])  # an empty write is a no-op


def test_missing_keys_are_none(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    store.create_view(p, view("w"))
    write(store, p, [(b"a", 1, 0, b"va")])
    assert store.read(p, [("v", [b"x", b"y"]), ("w", [b"a", b"x"])]) == [[None, None], [None, None]]
    assert store.read(p, [("v", [b"a"]), ("w", [b"a"])]) == [[b"va"], [None]]


def test_binary_keys_and_values(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    keys = [b"\x00", b"*", b"a:b", b"[x]?\\", bytes(range(256)), b"k" * 1000]
    big = os.urandom(1 << 20)
    values = [b"", b"\x00\xff", big, b"*", b"v", b"\n"]
    store.write(p, "v", keys, [1] * len(keys), [0] * len(keys), values)
    assert read1(store, p, keys) == values


def test_newer_event_wins(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    write(store, p, [(b"k", 100, 5, b"first")])
    write(store, p, [(b"k", 99, 999, b"older event")])  # older event, even with a later created
    assert read1(store, p, [b"k"]) == [b"first"]
    write(store, p, [(b"k", 100, 4, b"same event, older created")])
    assert read1(store, p, [b"k"]) == [b"first"]
    write(store, p, [(b"k", 100, 5, b"same event and created")])  # a rerun replaces: idempotent
    assert read1(store, p, [b"k"]) == [b"same event and created"]
    write(store, p, [(b"k", 100, 6, b"same event, newer created")])
    assert read1(store, p, [b"k"]) == [b"same event, newer created"]
    write(store, p, [(b"k", 101, 0, b"newer event")])
    assert read1(store, p, [b"k"]) == [b"newer event"]
    # negative times (before 1970) compare as numbers too
    write(store, p, [(b"n", -5, 0, b"a"), (b"n", -10, 0, b"b")])
    assert read1(store, p, [b"n"]) == [b"a"]


def test_timestamps_over_the_whole_int64_range(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    write(store, p, [(b"k", I64_MIN, I64_MIN, b"min")])
    assert read1(store, p, [b"k"]) == [b"min"]
    write(store, p, [(b"k", I64_MIN, I64_MIN + 1, b"min, created +1")])
    assert read1(store, p, [b"k"]) == [b"min, created +1"]
    write(store, p, [(b"k", -1, I64_MAX, b"-1")])
    write(store, p, [(b"k", -2, I64_MAX, b"-2")])
    assert read1(store, p, [b"k"]) == [b"-1"]
    write(store, p, [(b"k", 0, I64_MIN, b"0")])
    assert read1(store, p, [b"k"]) == [b"0"]
    write(store, p, [(b"k", 2**53 + 1, 0, b"2^53+1")])
    write(store, p, [(b"k", 2**53, 0, b"2^53")])  # equal as doubles: compared exactly
    assert read1(store, p, [b"k"]) == [b"2^53+1"]
    write(store, p, [(b"k", I64_MAX, I64_MAX, b"max")])
    write(store, p, [(b"k", I64_MAX, I64_MAX - 1, b"max, created -1")])
    assert read1(store, p, [b"k"]) == [b"max"]


def test_within_one_batch_the_newer_row_wins(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    write(store, p, [(b"k", 5, 0, b"newer"), (b"k", 3, 0, b"older")])
    assert read1(store, p, [b"k"]) == [b"newer"]
    write(store, p, [(b"t", 5, 1, b"a"), (b"t", 5, 2, b"b"), (b"t", 5, 1, b"c")])
    assert read1(store, p, [b"t"]) == [b"b"]
    write(store, p, [(b"f", 5, 1, b"first"), (b"f", 5, 1, b"second")])  # a full tie: the last
    assert read1(store, p, [b"f"]) == [b"second"]


def test_large_batch_with_duplicate_keys(backend: Backend, store: OnlineStore) -> None:
    # big enough for the bulk paths: COPY on Postgres, several Lua calls per round trip on Redis
    p = backend.project
    n = 12_000
    keys = [i.to_bytes(4, "big") for i in range(n)]
    write(store, p, [(k, 10, 0, b"old" + k) for k in keys])
    rows = [(k, 20 if i % 3 else 5, 0, b"new" + k) for i, k in enumerate(keys)]
    rows += [(k, 30, 0, b"dup" + k) for k in keys[:100]]  # the same keys again, newer
    write(store, p, rows)
    got = read1(store, p, keys)
    want = [
        b"dup" + k if i < 100 else b"new" + k if i % 3 else b"old" + k for i, k in enumerate(keys)
    ]
    assert got == want


def test_a_null_value_fails_the_write_and_writes_nothing(
    backend: Backend, store: OnlineStore
) -> None:
    import pyarrow as pa

    p = backend.project
    with pytest.raises(StoreError):
        store.write(p, "v", [b"a", b"b"], [1, 1], [0, 0], [b"x", None])  # type: ignore[list-item]
    n = 2_000  # the bulk paths (COPY on Postgres)
    keys = [b"k%d" % i for i in range(n)]
    with pytest.raises(StoreError):
        store.write_arrays(
            p,
            "v",
            pa.array(keys, pa.binary()),
            pa.array([1] * n, pa.int64()),
            None,
            pa.array([b"x"] * (n - 1) + [None], pa.binary()),
        )
    assert read1(store, p, [b"a", b"b", keys[0], keys[-1]]) == [None] * 4


def test_large_arrow_batches_with_and_without_duplicate_keys(
    backend: Backend, store: OnlineStore
) -> None:
    """write_arrays: the Arrow bulk path (Postgres: COPY data built in Rust) for unique keys
    in any order, and the one-row-per-key fallback when a key repeats."""
    import pyarrow as pa

    p = backend.project
    n = 5_000
    keys = [(i * 7919 % n).to_bytes(4, "big") for i in range(n)]  # unique, not sorted

    def write_arrays(rows: list[tuple[bytes, int, int | None, bytes]]) -> None:
        k, e, c, v = zip(*rows)
        store.write_arrays(
            p,
            "v",
            pa.array(k, pa.binary()),
            pa.array(e, pa.int64()),
            pa.array(c, pa.int64()),
            pa.array(v, pa.binary()),
        )

    write_arrays([(k, 10, None, b"old" + k) for k in keys])
    assert read1(store, p, keys) == [b"old" + k for k in keys]
    rows = [(k, 20 if i % 3 else 5, 0, b"new" + k) for i, k in enumerate(keys)]
    rows += [(k, 20, 1, b"dup" + k) for k in keys[:100]]  # the same keys again, newer created
    write_arrays(rows)
    want = [
        b"dup" + k if i < 100 else b"new" + k if i % 3 else b"old" + k for i, k in enumerate(keys)
    ]
    assert read1(store, p, keys) == want


# --- multi-view reads -----------------------------------------------------------------------------


def test_many_keys_and_views_in_one_read(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    store.create_view(p, view("w"))
    n = 2_500
    keys = [i.to_bytes(4, "little") for i in range(n)]
    write(store, p, [(k, 1, 0, b"v" + k) for k in keys[::2]])
    write(store, p, [(k, 1, 0, b"w" + k) for k in keys[1::2]], "w")
    ask = list(reversed(keys)) + [b"x"]
    got_v, got_w = store.read(p, [("v", ask), ("w", ask)])
    assert got_v == [
        b"v" + k if i % 2 == 0 else None for i, k in reversed(list(enumerate(keys)))
    ] + [None]
    assert got_w == [
        b"w" + k if i % 2 == 1 else None for i, k in reversed(list(enumerate(keys)))
    ] + [None]


def test_views_asking_for_different_keys(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    store.create_view(p, view("w"))
    store.create_view(p, view("z"))
    write(store, p, [(b"a", 1, 0, b"va"), (b"b", 1, 0, b"vb")])
    write(store, p, [(b"b", 1, 0, b"wb"), (b"c", 1, 0, b"wc")], "w")
    got = store.read(p, [("v", [b"a", b"b", b"a"]), ("w", [b"c", b"a"]), ("z", []), ("v", [b"b"])])
    assert got == [[b"va", b"vb", b"va"], [b"wc", None], [], [b"vb"]]
    # equal key lists that are different objects
    assert store.read(p, [("v", [b"b", b"c"]), ("w", [b"b", b"c"])]) == [
        [b"vb", None],
        [b"wb", b"wc"],
    ]


def test_view_names_needing_quotes(backend: Backend) -> None:
    s = backend.open()
    p = backend.project
    for name in ("my-view", "v.2", "select", "_x", "A"):
        s.create_view(p, view(name))
        s.write(p, name, [b"k"], [1], [0], [name.encode()])
    assert s.read(p, [(n, [b"k"]) for n in ("my-view", "v.2", "select", "_x", "A")]) == [
        [b"my-view"],
        [b"v.2"],
        [b"select"],
        [b"_x"],
        [b"A"],
    ]


def test_reads_and_writes_from_several_threads(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    keys = [bytes([i]) for i in range(50)]
    write(store, p, [(k, 1, 0, k * 3) for k in keys])
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(20):
                assert read1(store, p, keys) == [k * 3 for k in keys]
                store.write(p, "v", [b"t%d" % t], [i], [0], [b"%d" % i])
            assert read1(store, p, [b"t%d" % t]) == [b"19"]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_two_store_objects_share_the_data(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    other = backend.open()
    write(store, p, [(b"k", 1, 0, b"a")])
    assert other.read(p, [("v", [b"k"])]) == [[b"a"]]
    other.write(p, "v", [b"k"], [2], [0], [b"b"])
    assert read1(store, p, [b"k"]) == [b"b"]


def test_read_of_a_view_without_storage(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    if backend.is_redis:  # no per-view storage: the fields are simply absent
        assert store.read(p, [("v", [b"k"]), ("nope", [b"k"])]) == [[None], [None]]
        return
    with pytest.raises(StoreError, match="'nope'.*banquet apply"):
        store.read(p, [("v", [b"k"]), ("nope", [b"k"])])
    with pytest.raises(StoreError, match="'nope'"):
        store.write(p, "nope", [b"k"], [1], [0], [b"x"])
    # the store is still usable after an error
    write(store, p, [(b"k", 1, 0, b"ok")])
    assert read1(store, p, [b"k"]) == [b"ok"]


def test_ensure_view_recreates_lost_storage(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    v = view("lost")
    store.ensure_view(p, v)
    store.drop_view(p, "lost")  # forgets the ensured mark
    store.ensure_view(p, v)
    store.write(p, "lost", [b"k"], [1], [0], [b"x"])
    assert store.read(p, [("lost", [b"k"])]) == [[b"x"]]


# --- drop and teardown ------------------------------------------------------------------------------


def test_drop_view(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    store.create_view(p, view("w"))
    keys = [b"k%d" % i for i in range(2_100)]  # more than one SCAN batch on Redis
    store.write(p, "v", keys, [1] * len(keys), [0] * len(keys), keys)
    store.write(p, "w", keys[:10], [1] * 10, [0] * 10, [b"w"] * 10)
    store.drop_view(p, "v")
    store.drop_view(p, "v")  # idempotent
    store.drop_view(p, "never_made")
    assert store.read(p, [("w", keys[:11])]) == [[b"w"] * 10 + [None]]  # the other view stays
    store.create_view(p, view("v"))
    assert read1(store, p, keys[:3]) == [None, None, None]  # recreated storage starts empty
    if backend.is_redis:  # hashes emptied by the drop are gone, not left behind empty
        assert len(backend.owned(p)) == 10


def test_drop_and_teardown_on_a_fresh_backend(backend: Backend) -> None:
    s = backend.open()
    s.drop_view(backend.project, "v")
    s.teardown(backend.project)


def test_teardown_removes_exactly_this_projects_data(backend: Backend) -> None:
    alpha, beta = backend.project, backend.new_project()
    a, b = backend.open(alpha), backend.open(beta)
    for name in ("v", "w"):
        a.create_view(alpha, view(name))
        b.create_view(beta, view(name))
    for s, proj in ((a, alpha), (b, beta)):
        s.write(proj, "v", [b"k", b"j"], [1, 1], [0, 0], [proj.encode(), b"j"])
        s.write(proj, "w", [b"k"], [1], [0], [b"w"])
    assert backend.owned(alpha) and backend.owned(beta)
    foreign = _make_foreign_objects(backend, alpha)

    a.teardown(alpha)
    assert backend.owned(alpha) == set()
    assert _foreign_objects_left(backend, alpha) == foreign
    assert b.read(beta, [("v", [b"k", b"j"]), ("w", [b"k"])]) == [[beta.encode(), b"j"], [b"w"]]
    a.teardown(alpha)  # idempotent
    a.create_view(alpha, view("v"))
    assert a.read(alpha, [("v", [b"k"])]) == [[None]]


def test_projects_whose_names_prefix_each_other(backend: Backend) -> None:
    short = backend.project
    long_ = backend.add_project(short + "_x")  # "<short>_x" starts with "<short>"
    a, ab = backend.open(short), backend.open(long_)
    for s, proj in ((a, short), (ab, long_)):
        s.create_view(proj, view("v"))
        s.write(proj, "v", [b"k"], [1], [0], [proj.encode()])
    ab.drop_view(long_, "v")
    assert a.read(short, [("v", [b"k"])]) == [[short.encode()]]
    ab.create_view(long_, view("v"))
    ab.write(long_, "v", [b"k"], [1], [0], [long_.encode()])
    a.teardown(short)
    assert ab.read(long_, [("v", [b"k"])]) == [[long_.encode()]]


def _make_foreign_objects(backend: Backend, project: str) -> set[str]:
    """Objects banquet did not make, with names close to the project's: left alone."""
    if backend.kind == "sqlite":
        sqlite_query(backend.tmp_path / "online.db", f'CREATE TABLE "{project}__mine" (x)')
    elif backend.is_redis:
        client = backend.redis_client()
        for key in (project, f"{project}_mine", f"x{project}:k"):
            client.set(key.encode(), b"not banquet's", ex=600)
            backend.extra_redis_keys.append(key.encode())  # deleted after the test
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(backend.pg_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE TABLE {} (x int)").format(
                    sql.Identifier(backend.schema, f"{project}_mine")
                )
            )
    return _foreign_objects_left(backend, project)


def sqlite_query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Through banquet's own SQLite: Python's ``sqlite3`` would break the store's locks."""
    from banquet import _core

    probe = _core.SqliteStore(str(db))
    try:
        return probe.query(sql)  # type: ignore[no-any-return]
    finally:
        probe.close()


def _foreign_objects_left(backend: Backend, project: str) -> set[str]:
    if backend.kind == "sqlite":
        names = {
            r[0]
            for r in sqlite_query(backend.tmp_path / "online.db", "SELECT name FROM sqlite_master")
        }
        return {n for n in names if n == f"{project}__mine"}
    if backend.is_redis:
        client = backend.redis_client()
        names = {project, f"{project}_mine", f"x{project}:k"}
        return {n for n in names if client.exists(n.encode())}
    return {n for n in backend.pg_tables() if n == f"{project}_mine"}


# --- end to end: apply, materialize, get_online_features, teardown ---------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_materialize_and_serve(backend: Backend, tmp_repo: MakeRepo, repo_features: str) -> None:
    yaml = (
        "project: {project}\nregistry: data/registry.db\nprovider: local\n"
        + backend.yaml()
        + "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    # the data is from 2024: no ttl, so that it is served today
    features = repo_features.replace("ttl=timedelta(days=30),", "")
    assert features != repo_features
    repo = tmp_repo({"features.py": features}, yaml=yaml, project=backend.project)
    fs = FeatureStore(repo_path=repo)
    kind = "redis" if backend.is_redis else backend.kind
    assert type(fs.online_store).__name__.lower().startswith(kind)
    try:
        fs.apply()
        fs.materialize(T0, T0 + timedelta(hours=1))
        refs = ["user_profile:age", "user_profile:segment", "user_activity:clicks"]
        resp = fs.get_online_features(refs, {"user_id": [1, 2, 3, 99]})
        assert resp.to_dict() == {
            "user_id": [1, 2, 3, 99],
            "age": [30, 41, None, None],
            "segment": ["a", "b", None, None],
            "clicks": [5, 0, None, None],
        }
        assert resp.statuses["age"] == ["PRESENT", "PRESENT", "NOT_FOUND", "NOT_FOUND"]

        fs.materialize(T0, T0 + timedelta(days=1))  # newer rows replace older ones
        want = {
            "user_id": [1, 2, 3],
            "age": [31, 41, 25],
            "clicks": [5, 1, 7],
            "score": [0.5, 0.75, 1.0],
        }
        got = fs.get_online_features(fs.get_feature_service("model_v1"), {"user_id": [1, 2, 3]})
        assert got.to_dict() == want
        fs.materialize(T0, T0 + timedelta(hours=1))  # older rows never replace newer ones
        got = fs.get_online_features(fs.get_feature_service("model_v1"), {"user_id": [1, 2, 3]})
        assert got.to_dict() == want
        hour3 = int((T0 + timedelta(hours=3)).timestamp()) * 1_000_000
        assert got.event_timestamps["age"][0] == hour3

        fs.write_to_online_store(
            "user_activity",
            {
                "user_id": [3],
                "event_timestamp": [T0 + timedelta(days=2)],
                "clicks": [70],
                "score": [0.0],
            },
        )
        resp = fs.get_online_features(["user_activity:clicks"], [{"user_id": 3}])
        assert resp.to_dict()["clicks"] == [70]

        assert backend.owned(backend.project)
        fs.teardown()
        assert backend.owned(backend.project) == set()
        assert fs.list_feature_views() == []
    finally:
        fs.online_store.close()


# --- Redis: configuration, layout, and the server going away ----------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("localhost:6379", dict(host="localhost", port=6379)),
        ("redis.local", dict(host="redis.local", port=6379)),
        (
            "10.0.0.1:7000,db=3,password=p=w,ssl=true,username=u",
            dict(host="10.0.0.1", port=7000, db=3, password="p=w", ssl=True, username="u"),
        ),
        ("h:1, db = 2 ,ssl=False,", dict(host="h", port=1, db=2, ssl=False)),
        ("[::1]:6380", dict(host="::1", port=6380)),
        # URLs (redis-py's form): password %-escaped, db in the path, rediss:// for TLS
        ("redis://localhost:6379/0", dict(host="localhost", port=6379, db=0, password=None)),
        ("redis://:p%40w@h:7/2", dict(host="h", port=7, db=2, password="p@w", ssl=False)),
        ("rediss://u:pw@h?socket_timeout=3", dict(username="u", ssl=True, socket_timeout=3.0)),
        (
            "h:1,socket_timeout=0.5,socket_connect_timeout=2",
            dict(socket_timeout=0.5, socket_connect_timeout=2.0),
        ),
    ],
)
def test_connection_string(text: str, want: dict[str, Any]) -> None:
    got = parse_connection_string(text)
    for name, value in want.items():
        assert getattr(got, name) == value, name


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("http://localhost:6379/0", "redis:// or rediss://"),
        ("redis://localhost:port/0", "not a valid URL"),
        ("localhost/0", "not 'host:port'.*redis://:PASSWORD@HOST:PORT/DB"),
        ("localhost:port", "1 to 65535, not 'port'"),
        ("localhost:0", "1 to 65535"),
        (":6379", "no host"),
        ("h:1,db=x", "db='x'"),
        ("h:1,ssl=maybe", "ssl='maybe'"),
        ("h:1,timeout=3", "unknown option 'timeout'.*db, username, password, ssl"),
        ("h:1,db", "name=value"),
        ("h:1,socket_timeout=0", "positive"),
    ],
)
def test_connection_string_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_connection_string(text)


def _cluster_store(tmp_path: Path, nodes: str, **options: Any) -> RedisOnlineStore:
    cs = ",".join([nodes, *(f"{k}={v}" for k, v in options.items())])
    config = RepoConfig(
        project="gone",
        online_store=RedisOnlineConfig(connection_string=cs, redis_type="redis_cluster"),
        repo_path=tmp_path,
    )
    return RedisOnlineStore(config)


def test_redis_cluster_connection_string(tmp_path: Path) -> None:
    s = _cluster_store(tmp_path, "h1:7000,h2:7001,[::1]:7002", password="pw", ssl="true")
    assert s.address.nodes == (("h1", 7000), ("h2", 7001), ("::1", 7002))
    assert (s.address.password, s.address.ssl) == ("pw", True)
    assert str(s.address) == "h1:7000,h2:7001,[::1]:7002"
    with pytest.raises(ConfigError, match="only database 0"):
        _cluster_store(tmp_path, "h1:7000", db=1)
    config = RepoConfig(
        project="p",
        online_store=RedisOnlineConfig(connection_string="h1:7000,h2:7001"),
        repo_path=tmp_path,
    )
    with pytest.raises(ConfigError, match="redis_type: redis_cluster"):
        RedisOnlineStore(config)


@pytest.mark.redis
def test_redis_cluster_pointed_at_a_single_server(
    redis_url: str, tmp_path: Path, redis_connection_string: Callable[..., str]
) -> None:
    nodes = redis_connection_string(redis_url).replace(",db=0", "")
    s = _cluster_store(tmp_path, nodes)
    with pytest.raises(StoreError, match="not a cluster node.*redis_type: redis"):
        s.read("gone", [("v", [b"k"])])
    s.close()


@pytest.mark.redis
def test_redis_cluster_spreads_keys_over_every_node(make_backend: Callable[[str], Backend]) -> None:
    backend = make_backend("redis_cluster")
    p = backend.project
    s = backend.open()
    assert isinstance(s, RedisOnlineStore)
    keys = [b"k%d" % i for i in range(300)]
    s.write(p, "v", keys, [1] * 300, [0] * 300, keys)
    per_node = [
        len(list(node.client.scan_iter(match=f"{p}:*".encode(), count=1000)))
        for node in s._topology().nodes
    ]
    assert len(per_node) == 3 and all(n > 50 for n in per_node) and sum(per_node) == 300
    assert read1(s, p, keys) == keys  # one request, split per node, merged in key order


def test_redis_cluster_new_values_by_hsetnx_per_node(
    make_backend: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster too, new fields go by HSETNX (each node its own keys), existing ones
    through the per-slot script; counted with each node's command statistics."""
    from banquet.online import redis as R

    backend = make_backend("redis_cluster")
    p = backend.project
    s = backend.open()
    assert isinstance(s, RedisOnlineStore)
    nodes = s._topology().nodes

    def calls(command: str) -> int:
        return sum(
            int(n.client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))
            for n in nodes
        )

    monkeypatch.setattr(R, "KEYS_PER_ROUND_TRIP", 1000)
    n = 9 * R.KEYS_PER_ROUND_TRIP + 7  # three waves of three nodes' 1000 keys each
    keys = [b"c%06d" % i for i in range(n)]
    before = (calls("hsetnx"), calls("evalsha"))
    s.write(p, "v", keys, [5] * n, [0] * n, [b"a"] * n)
    assert calls("hsetnx") - before[0] == n and calls("evalsha") == before[1]
    before = (calls("hsetnx"), calls("evalsha"))
    s.write(p, "v", keys, [6 - i % 2 * 2 for i in range(n)], [0] * n, [b"b"] * n)
    assert calls("hsetnx") - before[0] < n  # most waves went straight to the script
    assert calls("evalsha") > before[1]
    assert read1(s, p, keys) == [b"b" if i % 2 == 0 else b"a" for i in range(n)]


@pytest.mark.redis
def test_redis_cluster_node_gone_is_store_unavailable(
    throwaway_cluster: ThrowawayCluster, tmp_path: Path
) -> None:
    s = _cluster_store(tmp_path, throwaway_cluster.nodes, socket_timeout=2)
    keys = [b"k%d" % i for i in range(100)]  # on every node
    s.write("gone", "v", keys, [1] * 100, [0] * 100, keys)
    assert read1(s, "gone", keys) == keys
    dead = throwaway_cluster.ports[1]
    throwaway_cluster.procs[dead].kill()
    throwaway_cluster.procs[dead].wait(10)
    for call in (
        lambda: s.read("gone", [("v", keys)]),
        lambda: s.write("gone", "v", keys, [2] * 100, [0] * 100, keys),
    ):
        t = time.monotonic()
        with pytest.raises(
            StoreUnavailable, match=f"Redis Cluster online store at .*127.0.0.1:{dead}"
        ):
            call()
        assert time.monotonic() - t < 3
    s.close()


@pytest.mark.redis
def test_redis_server_gone_mid_request(
    redis_url: str, tcp_proxy: Callable[[str, int], TcpProxy], tmp_path: Path
) -> None:
    from urllib.parse import urlsplit

    u = urlsplit(redis_url)
    proxy = tcp_proxy(u.hostname or "127.0.0.1", u.port or 6379)
    project = "t" + os.urandom(6).hex()
    auth = {"password": u.password} if u.password else {}  # the local Redis has requirepass
    # a long socket timeout: the error must come from the lost server, not from a timeout
    s = _redis_store(tmp_path, proxy.port, socket_timeout=60, **auth)
    direct = _redis_store(tmp_path, u.port or 6379, **auth)
    try:
        s.write(project, "v", [b"k"], [1], [0], [b"x"])
        assert s.read(project, [("v", [b"k"])]) == [[b"x"]]
        _fails_when_the_server_goes_mid_request(
            proxy,
            lambda: s.read(project, [("v", [b"k"])]),
            f"Redis online store at 127.0.0.1:{proxy.port}",
        )
    finally:
        direct.teardown(project)
        direct.close()
        s.close()


def _fails_when_the_server_goes_mid_request(
    proxy: TcpProxy, call: Callable[[], Any], names: str
) -> None:
    """``call`` is sent, the server goes away before it answers: a StoreUnavailable naming
    the store and its address, within seconds."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - checked below
            outcome.append(e)

    proxy.hold()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert proxy.swallowed.wait(5), "the request never reached the proxy"
    time.sleep(0.05)
    t = time.monotonic()
    proxy.kill()
    thread.join(5)
    assert not thread.is_alive(), "hung after the server went away"
    assert time.monotonic() - t < 3
    (error,) = outcome
    assert isinstance(error, StoreUnavailable), repr(error)
    assert names in str(error) and "unavailable" in str(error)


def test_redis_config_from_yaml(tmp_path: Path) -> None:
    cfg = RepoConfig.from_dict(
        {
            "project": "p",
            "online_store": {
                "type": "redis",
                "connection_string": "h:1,db=2",
                "key_ttl_seconds": 60,
            },
        }
    )
    s = RedisOnlineStore(cfg)
    assert (s.address.host, s.address.port, s.address.db, s.key_ttl_seconds) == ("h", 1, 2, 60)
    assert str(s.address) == "h:1 (db 2)"


@pytest.mark.redis
def test_redis_layout_and_key_ttl(
    redis_url: str, tmp_path: Path, redis_connection_string: Callable[..., str]
) -> None:
    import redis

    project = "t" + os.urandom(6).hex()
    config = RepoConfig(
        project=project,
        online_store=RedisOnlineConfig(
            connection_string=redis_connection_string(redis_url), key_ttl_seconds=120
        ),
        repo_path=tmp_path,
    )
    s = RedisOnlineStore(config)
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        s.write(project, "v", [b"\x01key"], [5], [-1], [b"blob"])
        key = project.encode() + b":\x01key"
        stamp = (5 + 2**63).to_bytes(8, "big") + (2**63 - 1).to_bytes(8, "big")
        assert client.hgetall(key) == {b"v": stamp + b"blob"}  # one field: stamp, then blob
        assert 0 < client.ttl(key) <= 120
        assert s.read(project, [("v", [b"\x01key"])]) == [[b"blob"]]
    finally:
        s.teardown(project)
        s.close()
        client.close()


@pytest.mark.redis
def test_redis_new_values_by_hsetnx_then_the_script(
    redis_url: str, tmp_path: Path, redis_connection_string: Callable[..., str]
) -> None:
    """Without a key ttl a write first tries HSETNX (fields not stored yet: nothing newer to
    keep); fields that exist go through the script. Same stored bytes either way; counted
    with Redis's own command statistics. A hash key holding another type is a StoreError."""
    import redis

    from banquet.online import redis as R

    project = "t" + os.urandom(6).hex()
    config = RepoConfig(
        project=project,
        online_store=RedisOnlineConfig(connection_string=redis_connection_string(redis_url)),
        repo_path=tmp_path,
    )
    s = RedisOnlineStore(config)
    client = redis.Redis.from_url(redis_url, socket_timeout=5)

    def calls(command: str) -> int:
        return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    try:
        keys = [b"k%05d" % i for i in range(25_000)]
        before = (calls("hsetnx"), calls("evalsha"))
        s.write(project, "v", keys, [5] * len(keys), [-1] * len(keys), [b"a"] * len(keys))
        assert calls("hsetnx") - before[0] == len(keys) and calls("evalsha") == before[1]
        stamp = (5 + 2**63).to_bytes(8, "big") + (2**63 - 1).to_bytes(8, "big")
        assert client.hgetall(project.encode() + b":" + keys[7]) == {b"v": stamp + b"a"}
        # again, newer for even keys: the first wave finds them all stored, the rest skip
        # straight to the script; older values stay
        before = (calls("hsetnx"), calls("evalsha"))
        s.write(
            project,
            "v",
            keys,
            [6 - i % 2 * 2 for i in range(len(keys))],
            [0] * len(keys),
            [b"b"] * len(keys),
        )
        assert calls("hsetnx") - before[0] <= 2 * R.KEYS_PER_ROUND_TRIP
        assert calls("evalsha") > before[1]
        got = s.read(project, [("v", keys)])[0]
        assert got == [b"b" if i % 2 == 0 else b"a" for i in range(len(keys))]
        client.set(project.encode() + b":plain", b"x")
        with pytest.raises(StoreError, match="WRONGTYPE"):
            s.write(project, "v", [b"plain", b"k00001"], [9, 9], [0, 0], [b"c", b"c"])
        assert s.read(project, [("v", [b"k00001"])]) == [[b"a"]]
    finally:
        client.delete(project.encode() + b":plain")
        s.teardown(project)
        s.close()
        client.close()


def test_redis_script_calls_encoded_alike_in_rust_and_python() -> None:
    from banquet import _core
    from banquet.online import redis as R

    assert hasattr(_core, "resp_evalsha"), "stale extension: run `make develop`"
    n = 2 * R.SCRIPT_KEYS + 7  # three calls, the last one short
    keys = [os.urandom(i % 40) for i in range(n)]
    blobs = [os.urandom(i % 300) for i in range(n)]
    event = [(-1) ** i * i * 2**40 for i in range(n)]
    event[:3] = [I64_MIN, I64_MAX, 0]
    created = [I64_MAX - i for i in range(n)]
    head = [b"view", b"3600"]
    rust = R.encode_script_calls(b"p:", head, keys, event, created, blobs)
    python = R.encode_script_calls(b"p:", head, tuple(keys), event, created, tuple(blobs))
    assert rust[1] == python[1] == 3
    assert rust[0] == python[0]
    with pytest.raises(TypeError):
        R.encode_script_calls(b"p:", head, keys, event, created, [*blobs[:-1], None])


def _redis_store(tmp_path: Path, port: int, **options: Any) -> RedisOnlineStore:
    cs = ",".join([f"127.0.0.1:{port}", "db=0", *(f"{k}={v}" for k, v in options.items())])
    config = RepoConfig(
        project="gone", online_store=RedisOnlineConfig(connection_string=cs), repo_path=tmp_path
    )
    return RedisOnlineStore(config)


def test_redis_nothing_listening_is_store_unavailable(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    s = _redis_store(tmp_path, port, socket_connect_timeout=2)
    calls = [
        lambda: s.read("gone", [("v", [b"k"])]),
        lambda: s.read("gone", [("v", [b"k", b"j"]), ("w", [b"k"])]),
        lambda: s.write("gone", "v", [b"k"], [1], [0], [b"x"]),
        lambda: s.create_view("gone", view("v")),
        lambda: s.drop_view("gone", "v"),
        lambda: s.teardown("gone"),
    ]
    for call in calls:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"Redis online store at 127.0.0.1:{port}"):
            call()
        assert time.monotonic() - t < 3
    with pytest.raises(ConnectionError):  # StoreUnavailable is also a ConnectionError
        s.read("gone", [("v", [b"k"])])
    s.close()


@pytest.fixture
def throwaway_redis(
    tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """``start()`` runs a private redis-server on a free loopback port (``.port``); every
    server it started is stopped after the test."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.fail("no redis-server binary: run `make services` (it installs it)", pytrace=False)
    procs: list[subprocess.Popen[bytes]] = []
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        proc.port = port  # type: ignore[attr-defined]
        import redis

        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
            finally:
                client.close()
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.redis
def test_redis_server_stopping_and_coming_back(
    throwaway_redis: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    server = throwaway_redis()
    s = _redis_store(tmp_path, server.port, socket_timeout=2)  # type: ignore[attr-defined]
    s.create_view("gone", view("v"))
    s.write("gone", "v", [b"k"], [1], [0], [b"x"])
    assert s.read("gone", [("v", [b"k"])]) == [[b"x"]]

    server.terminate()
    server.wait(10)
    for call in (
        lambda: s.read("gone", [("v", [b"k"])]),
        lambda: s.write("gone", "v", [b"k"], [2], [0], [b"y"]),
    ):
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            call()
        assert time.monotonic() - t < 3

    throwaway_redis()  # a new, empty server on the same port: the same store object recovers
    assert s.read("gone", [("v", [b"k"])]) == [[None]]
    s.write("gone", "v", [b"k"], [3], [0], [b"z"])  # the write script is loaded again
    assert s.read("gone", [("v", [b"k"])]) == [[b"z"]]
    s.close()


@pytest.mark.redis
def test_redis_scripts_flushed_are_reloaded(
    throwaway_redis: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    import redis

    server = throwaway_redis()
    s = _redis_store(tmp_path, server.port)  # type: ignore[attr-defined]
    s.write("gone", "v", [b"k"], [1], [0], [b"a"])
    client = redis.Redis(port=server.port, socket_timeout=5)  # type: ignore[attr-defined]
    client.script_flush()
    client.close()
    s.write("gone", "v", [b"k", b"j"], [2, 2], [0, 0], [b"b", b"c"])
    assert s.read("gone", [("v", [b"k", b"j"])]) == [[b"b", b"c"]]
    s.close()


@pytest.mark.redis
def test_redis_server_hanging_times_out(
    throwaway_redis: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    server = throwaway_redis()
    s = _redis_store(tmp_path, server.port, socket_timeout=0.5)  # type: ignore[attr-defined]
    s.write("gone", "v", [b"k"], [1], [0], [b"x"])
    server.send_signal(signal.SIGSTOP)  # alive, but answers nothing
    try:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            s.read("gone", [("v", [b"k"])])
        assert time.monotonic() - t < 3
    finally:
        server.send_signal(signal.SIGCONT)
    assert s.read("gone", [("v", [b"k"])]) == [[b"x"]]
    s.close()


# --- Postgres: layout, configuration, and the server going away ---------------------------------------


def test_postgres_table_names() -> None:
    assert table_name("p", "v") == "p:v"
    long_view = "v" * 70
    a, b = table_name("proj", long_view), table_name("proj", long_view + "x")
    assert len(a.encode()) == len(b.encode()) == 63
    assert a != b and a.startswith("proj:vvv")
    assert table_name("proj", long_view) == a  # deterministic


@pytest.mark.postgres
def test_postgres_layout(postgres_backend: Backend) -> None:
    import psycopg

    p, schema = postgres_backend.project, postgres_backend.schema
    s = postgres_backend.open()
    long_view = "a_rather_long_feature_view_name_" + "x" * 40
    for name in ("v", long_view):
        s.create_view(p, view(name))
        s.write(p, name, [b"k"], [7], [3], [b"blob"])
    assert postgres_backend.pg_tables() == {VIEWS_TABLE, f"{p}:v", table_name(p, long_view)}
    with psycopg.connect(postgres_backend.pg_dsn, autocommit=True) as conn:
        cols = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, f"{p}:v"],
        ).fetchall()
        pk = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            [f'"{schema}"."{p}:v"'],
        ).fetchall()
        row = conn.execute(
            f'SELECT entity_key, event_ts, created_ts, value FROM "{schema}"."{p}:v"'
        ).fetchone()
        owned = conn.execute(
            f'SELECT project, view, table_name FROM "{schema}".{VIEWS_TABLE} ORDER BY view'
        ).fetchall()
    assert cols == [
        ("entity_key", "bytea", "NO"),
        ("event_ts", "bigint", "NO"),
        ("created_ts", "bigint", "NO"),
        ("value", "bytea", "NO"),
    ]
    assert pk == [("entity_key",)]
    assert row == (b"k", 7, 3, b"blob")
    assert owned == [(p, long_view, table_name(p, long_view)), (p, "v", f"{p}:v")]
    assert s.read(p, [(long_view, [b"k"]), ("v", [b"k"])]) == [[b"blob"], [b"blob"]]


@pytest.mark.postgres
def test_postgres_failed_write_writes_nothing(postgres_backend: Backend) -> None:
    p = postgres_backend.project
    s = postgres_backend.open()
    s.create_view(p, view("v"))
    s.write(p, "v", [b"a"], [1], [0], [b"old"])
    for n in (3, 3000):  # the array path and the COPY path
        keys = [b"a"] + [b"k%d" % i for i in range(n - 1)]
        blobs: list[Any] = [b"new"] * n
        blobs[n // 2] = None  # violates NOT NULL in the middle of the batch
        with pytest.raises(StoreError):
            s.write(p, "v", keys, [2] * n, [0] * n, blobs)
        assert s.read(p, [("v", keys[:3])]) == [[b"old", None, None]]
    s.write(p, "v", [b"a"], [3], [0], [b"newer"])  # the pool's connection is still good
    assert s.read(p, [("v", [b"a"])]) == [[b"newer"]]


def _pg_store(tmp_path: Path, **settings: Any) -> PostgresOnlineStore:
    config = RepoConfig(
        project="gone", online_store=PostgresOnlineConfig(**settings), repo_path=tmp_path
    )
    return PostgresOnlineStore(config)


def test_postgres_nothing_listening_is_store_unavailable(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    s = _pg_store(tmp_path, host="127.0.0.1", port=port)
    calls = [
        lambda: s.read("gone", [("v", [b"k"])]),
        lambda: s.write("gone", "v", [b"k"], [1], [0], [b"x"]),
        lambda: s.create_view("gone", view("v")),
        lambda: s.drop_view("gone", "v"),
        lambda: s.teardown("gone"),
    ]
    for call in calls:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"Postgres online store at 127.0.0.1:{port}"):
            call()
        assert time.monotonic() - t < 3
    s.close()


@pytest.mark.postgres
def test_postgres_connection_lost_then_server_gone(
    postgres_backend: Backend, free_port: Callable[[], int]
) -> None:
    import dataclasses

    import psycopg

    p = postgres_backend.project
    s = postgres_backend.open(min_conn=1, max_conn=1)
    assert isinstance(s, PostgresOnlineStore)
    s.create_view(p, view("v"))
    s.write(p, "v", [b"k"], [1], [0], [b"x"])

    def backend_pid(conn: psycopg.Connection[Any]) -> int:
        return conn.info.backend_pid

    def kill_pool_connection() -> None:
        pid = s._run("pid", backend_pid)
        with psycopg.connect(postgres_backend.pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    # a pooled connection the server dropped (a restart): retried once, transparently
    kill_pool_connection()
    assert s.read(p, [("v", [b"k"])]) == [[b"x"]]
    kill_pool_connection()
    s.write(p, "v", [b"k"], [2], [0], [b"y"])
    assert s.read(p, [("v", [b"k"])]) == [[b"y"]]

    # the server goes away for good (its address now leads nowhere): typed, quick
    kill_pool_connection()
    s.cfg = dataclasses.replace(s.cfg, port=free_port())
    t = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        s.read(p, [("v", [b"k"])])
    assert time.monotonic() - t < 3


@pytest.mark.postgres
def test_postgres_server_gone_mid_request(
    postgres_backend: Backend,
    tcp_proxy: Callable[[str, int], TcpProxy],
    postgres_settings: Callable[[str], dict[str, Any]],
) -> None:
    p = postgres_backend.project
    settings = postgres_settings(postgres_backend.pg_dsn)
    proxy = tcp_proxy(settings["host"], settings["port"])
    s = postgres_backend.open(host="127.0.0.1", port=proxy.port)
    s.create_view(p, view("v"))
    s.write(p, "v", [b"k"], [1], [0], [b"x"])
    assert s.read(p, [("v", [b"k"])]) == [[b"x"]]
    _fails_when_the_server_goes_mid_request(
        proxy,
        lambda: s.read(p, [("v", [b"k"])]),
        f"Postgres online store at 127.0.0.1:{proxy.port}",
    )


def test_postgres_server_stalling_times_out(
    postgres_backend: Backend,
    tcp_proxy: Callable[[str, int], TcpProxy],
    postgres_settings: Callable[[str], dict[str, Any]],
) -> None:
    """A server that takes the request and never answers: StoreUnavailable after
    timeout_seconds (libpq alone would wait forever), then the store works again."""
    p = postgres_backend.project
    settings = postgres_settings(postgres_backend.pg_dsn)
    proxy = tcp_proxy(settings["host"], settings["port"])
    s = postgres_backend.open(host="127.0.0.1", port=proxy.port, timeout_seconds=0.5)
    s.create_view(p, view("v"))
    s.write(p, "v", [b"k"], [1], [0], [b"x"])
    proxy.hold()
    t = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"no answer within 0.5 s \(timeout_seconds\)"):
        s.read(p, [("v", [b"k"])])
    assert time.monotonic() - t < 3
    with pytest.raises(StoreUnavailable, match="write to feature view 'v'.*no answer"):
        s.write(p, "v", [b"k"], [2], [0], [b"y"])
    direct = postgres_backend.open()  # the server itself is fine
    assert direct.read(p, [("v", [b"k"])]) == [[b"x"]]
    with pytest.raises(ConfigError, match="timeout_seconds"):
        postgres_backend.open(timeout_seconds=0)


@pytest.mark.postgres
def test_postgres_unknown_database_is_a_store_error(
    pg_dsn: str, tmp_path: Path, postgres_settings: Callable[[str], dict[str, Any]]
) -> None:
    settings = postgres_settings(pg_dsn)
    settings["database"] = "no_such_database_" + os.urandom(4).hex()
    s = _pg_store(tmp_path, **settings)
    with pytest.raises(StoreError, match="no_such_database") as info:
        s.read("gone", [("v", [b"k"])])
    assert not isinstance(info.value, StoreUnavailable)  # a setting to fix, not an outage
    s.close()
