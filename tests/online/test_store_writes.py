"""Every online store (sqlite, redis, redis_cluster, postgres): writes and reads back,
newer event wins (across and within batches, over the whole int64 range), binary keys,
large and Arrow batches, a failed write writes nothing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from store_support import I64_MAX, I64_MIN, read1, view, write

from banquet.errors import StoreError
from banquet.online.base import OnlineStore, rows_batch

if TYPE_CHECKING:
    from conftest import Backend


# --- write and read ------------------------------------------------------------------------------


def test_write_then_read(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    write(store, p, [(b"k1", 10, 0, b"one"), (b"k2", 20, 5, b"two")])
    assert read1(store, p, [b"k2", b"missing", b"k1", b"k2"]) == [b"two", None, b"one", b"two"]
    assert read1(store, p, [b"k1"]) == [b"one"]  # the single-key path
    assert read1(store, p, [b"nope"]) == [None]
    assert read1(store, p, []) == []
    assert store.read(p, []) == []
    store.write(p, "v", rows_batch([], [], [], []))  # an empty write is a no-op


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
    store.write(p, "v", rows_batch(keys, [1] * len(keys), [0] * len(keys), values))
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
        store.write(p, "v", rows_batch([b"a", b"b"], [1, 1], [0, 0], [b"x", None]))  # type: ignore[list-item]
    n = 2_000  # the bulk paths (COPY on Postgres)
    keys = [b"k%d" % i for i in range(n)]
    with pytest.raises(StoreError):
        store.write(
            p,
            "v",
            rows_batch(
                pa.array(keys, pa.binary()),
                pa.array([1] * n, pa.int64()),
                None,
                pa.array([b"x"] * (n - 1) + [None], pa.binary()),
            ),
        )
    assert read1(store, p, [b"a", b"b", keys[0], keys[-1]]) == [None] * 4


def test_large_arrow_batches_with_and_without_duplicate_keys(
    backend: Backend, store: OnlineStore
) -> None:
    """The Arrow bulk path (Postgres: COPY data built in Rust) for unique keys
    in any order, and the one-row-per-key fallback when a key repeats."""
    import pyarrow as pa

    p = backend.project
    n = 5_000
    keys = [(i * 7919 % n).to_bytes(4, "big") for i in range(n)]  # unique, not sorted

    def write_arrays(rows: list[tuple[bytes, int, int | None, bytes]]) -> None:
        k, e, c, v = zip(*rows)
        store.write(
            p,
            "v",
            rows_batch(
                pa.array(k, pa.binary()),
                pa.array(e, pa.int64()),
                pa.array(c, pa.int64()),
                pa.array(v, pa.binary()),
            ),
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
