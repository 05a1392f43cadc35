"""Every online store: reads of several views and keys in one call, views keyed by
different keys, threads, two store objects, missing storage; and apply, materialize,
get_online_features end to end."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from store_support import read1, view, write

from banquet import FeatureStore
from banquet.errors import StoreError
from banquet.online.base import OnlineStore, rows_batch

if TYPE_CHECKING:
    from conftest import Backend


MakeRepo = Callable[..., Path]
UTC = timezone.utc


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
        s.write(p, name, rows_batch([b"k"], [1], [0], [name.encode()]))
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
                store.write(p, "v", rows_batch([b"t%d" % t], [i], [0], [b"%d" % i]))
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
    other.write(p, "v", rows_batch([b"k"], [2], [0], [b"b"]))
    assert read1(store, p, [b"k"]) == [b"b"]


def test_read_of_a_view_without_storage(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    if backend.is_redis:  # no per-view storage: the fields are simply absent
        assert store.read(p, [("v", [b"k"]), ("nope", [b"k"])]) == [[None], [None]]
        return
    with pytest.raises(StoreError, match="'nope'.*banquet apply"):
        store.read(p, [("v", [b"k"]), ("nope", [b"k"])])
    with pytest.raises(StoreError, match="'nope'"):
        store.write(p, "nope", rows_batch([b"k"], [1], [0], [b"x"]))
    # the store is still usable after an error
    write(store, p, [(b"k", 1, 0, b"ok")])
    assert read1(store, p, [b"k"]) == [b"ok"]


def test_ensure_view_recreates_lost_storage(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    v = view("lost")
    store.ensure_view(p, v)
    store.drop_view(p, "lost")  # forgets the ensured mark
    store.ensure_view(p, v)
    store.write(p, "lost", rows_batch([b"k"], [1], [0], [b"x"]))
    assert store.read(p, [("lost", [b"k"])]) == [[b"x"]]


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
