"""Redis Cluster: connection string, keys spread over every node, a read's slots (one call
from 128 keys), HSETNX per node, a node gone is StoreUnavailable."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from store_support import read1

from banquet import RepoConfig
from banquet.config import RedisOnlineConfig
from banquet.errors import ConfigError, StoreError, StoreUnavailable
from banquet.online.base import rows_batch
from banquet.online.redis import RedisOnlineStore

if TYPE_CHECKING:
    from conftest import Backend, ThrowawayCluster


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
    s.write(p, "v", rows_batch(keys, [1] * 300, [0] * 300, keys))
    per_node = [
        len(list(node.client.scan_iter(match=f"{p}:*".encode(), count=1000)))
        for node in s._topology().nodes
    ]
    assert len(per_node) == 3 and all(n > 50 for n in per_node) and sum(per_node) == 300
    assert read1(s, p, keys) == keys  # one request, split per node, merged in key order


@pytest.mark.parametrize("n", [1, 127, 128, 1000])
def test_redis_cluster_read_slots_one_call_from_128_keys(
    make_backend: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    """A read of 128 keys or more computes their slots in one _core.key_slots call (no
    key_slot per key); fewer, one key_slot each (cheaper below ~150). Same answers."""
    import banquet.online.redis.store as store_module
    from banquet import _core

    backend = make_backend("redis_cluster")
    p = backend.project
    s = backend.open()
    keys = [b"r%d" % i for i in range(n)]
    s.write(p, "v", rows_batch(keys, [1] * n, [0] * n, keys))
    calls = {"key_slot": 0, "key_slots": 0}

    def count(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any) -> Any:
            calls[name] += 1
            return real(*args)

        return spy

    monkeypatch.setattr(store_module, "key_slot", count("key_slot", store_module.key_slot))
    monkeypatch.setattr(_core, "key_slots", count("key_slots", _core.key_slots))
    ask = [*reversed(keys), b"missing"]
    assert read1(s, p, ask) == [*reversed(keys), None]
    # views keyed by different keys: the distinct keys' slots
    assert s.read(p, [("v", ask), ("w", ask[:1])]) == [[*reversed(keys), None], [None]]
    if n + 1 >= 128:
        assert calls == {"key_slot": 0, "key_slots": 2}
    else:
        assert calls == {"key_slot": 2 * (n + 1), "key_slots": 0}


def test_redis_cluster_new_values_by_hsetnx_per_node(
    make_backend: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cluster too, new fields go by HSETNX (each node its own keys), existing ones
    through the per-slot script; counted with each node's command statistics."""
    from banquet.online.redis import store as R  # where the constant is read

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
    s.write(p, "v", rows_batch(keys, [5] * n, [0] * n, [b"a"] * n))
    assert calls("hsetnx") - before[0] == n and calls("evalsha") == before[1]
    before = (calls("hsetnx"), calls("evalsha"))
    s.write(p, "v", rows_batch(keys, [6 - i % 2 * 2 for i in range(n)], [0] * n, [b"b"] * n))
    assert calls("hsetnx") - before[0] < n  # most waves went straight to the script
    assert calls("evalsha") > before[1]
    assert read1(s, p, keys) == [b"b" if i % 2 == 0 else b"a" for i in range(n)]


@pytest.mark.redis
def test_redis_cluster_node_gone_is_store_unavailable(
    throwaway_cluster: ThrowawayCluster, tmp_path: Path
) -> None:
    s = _cluster_store(tmp_path, throwaway_cluster.nodes, socket_timeout=2)
    keys = [b"k%d" % i for i in range(100)]  # on every node
    s.write("gone", "v", rows_batch(keys, [1] * 100, [0] * 100, keys))
    assert read1(s, "gone", keys) == keys
    dead = throwaway_cluster.ports[1]
    throwaway_cluster.procs[dead].kill()
    throwaway_cluster.procs[dead].wait(10)
    for call in (
        lambda: s.read("gone", [("v", keys)]),
        lambda: s.write("gone", "v", rows_batch(keys, [2] * 100, [0] * 100, keys)),
    ):
        t = time.monotonic()
        with pytest.raises(
            StoreUnavailable, match=f"Redis Cluster online store at .*127.0.0.1:{dead}"
        ):
            call()
        assert time.monotonic() - t < 3
    s.close()
