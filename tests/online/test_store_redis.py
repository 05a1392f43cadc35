"""The Redis store's own behaviour: connection strings, configuration, the layout and key
ttl, HSETNX first then the script, the script calls' encoding."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from banquet import RepoConfig
from banquet.config import RedisOnlineConfig
from banquet.errors import ConfigError, StoreError
from banquet.online.base import rows_batch
from banquet.online.redis import RedisOnlineStore, parse_connection_string

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
        s.write(project, "v", rows_batch([b"\x01key"], [5], [-1], [b"blob"]))
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
        s.write(
            project, "v", rows_batch(keys, [5] * len(keys), [-1] * len(keys), [b"a"] * len(keys))
        )
        assert calls("hsetnx") - before[0] == len(keys) and calls("evalsha") == before[1]
        stamp = (5 + 2**63).to_bytes(8, "big") + (2**63 - 1).to_bytes(8, "big")
        assert client.hgetall(project.encode() + b":" + keys[7]) == {b"v": stamp + b"a"}
        # again, newer for even keys: the first wave finds them all stored, the rest skip
        # straight to the script; older values stay
        before = (calls("hsetnx"), calls("evalsha"))
        s.write(
            project,
            "v",
            rows_batch(
                keys, [6 - i % 2 * 2 for i in range(len(keys))], [0] * len(keys), [b"b"] * len(keys)
            ),
        )
        assert calls("hsetnx") - before[0] <= 2 * R.KEYS_PER_ROUND_TRIP
        assert calls("evalsha") > before[1]
        got = s.read(project, [("v", keys)])[0]
        assert got == [b"b" if i % 2 == 0 else b"a" for i in range(len(keys))]
        client.set(project.encode() + b":plain", b"x")
        with pytest.raises(StoreError, match="WRONGTYPE"):
            s.write(project, "v", rows_batch([b"plain", b"k00001"], [9, 9], [0, 0], [b"c", b"c"]))
        assert s.read(project, [("v", [b"k00001"])]) == [[b"a"]]
    finally:
        client.delete(project.encode() + b":plain")
        s.teardown(project)
        s.close()
        client.close()


def test_redis_script_calls_refuse_a_null_value() -> None:
    """The bytes of the script calls are pinned by wire/resp.rs's Rust tests."""
    from banquet.online import redis as R

    with pytest.raises(TypeError):
        R.encode_script_calls(
            b"p:",
            [b"view", b"0"],
            pa.array([b"k"]),
            pa.array([1], pa.int64()),
            None,
            pa.array([None], pa.binary()),
        )
