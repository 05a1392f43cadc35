"""The online stores' wire encoders in ``_core`` (their bytes are pinned by ``cargo test`` in
``rust/core/src/wire``): Redis Cluster key slots, typed errors for bad rows, and the GIL left
free while a batch of Redis write calls is encoded."""

from __future__ import annotations

import sys
import threading
import time
from binascii import crc_hqx

import pyarrow as pa
import pytest

from banquet import _core
from banquet.errors import BanquetError, KernelError, KernelTypeError


def _reference_slot(key: bytes) -> int:
    """Redis's rule, written out: CRC16 of the key or of its non-empty ``{hash tag}``."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % 16384


KEYS = [b"", b"foo", b"{user1000}.following", b"a{}b", b"x{{y}}", b"\xff" * 70, b"{", b"}{a}"]


def test_key_slot_follows_the_redis_rule() -> None:
    assert _core.key_slot(b"foo") == 12182  # CLUSTER KEYSLOT foo
    assert [_core.key_slot(k) for k in KEYS] == [_reference_slot(k) for k in KEYS]


def test_key_slots_of_an_arrow_array_with_a_prefix() -> None:
    for array in (pa.array(KEYS, pa.binary()), pa.array(KEYS, pa.large_binary())):
        got = _core.key_slots(array, b"proj:")
        assert got.type == pa.uint16()
        assert got.to_pylist() == [_reference_slot(b"proj:" + k) for k in KEYS]
    assert _core.key_slots(pa.array(KEYS, pa.binary())).to_pylist() == [
        _reference_slot(k) for k in KEYS
    ]
    with pytest.raises(KernelTypeError, match="keys"):
        _core.key_slots(pa.array([b"a", None], pa.binary()))
    with pytest.raises(KernelTypeError, match="binary"):
        _core.key_slots(pa.array(["a"]))


def test_bad_rows_are_typed_errors_naming_the_function() -> None:
    keys = pa.array([b"a", b"b"])
    times = pa.array([1, 2], pa.int64())
    cases = [
        (pa.array([b"a", None]), times, keys, "keys hold nulls"),
        (keys, pa.array([1, None], pa.int64()), keys, "event_ts holds nulls"),
        (keys, pa.array([1], pa.int64()), keys, "2 keys but"),
        (keys, pa.array([1, 2], pa.int32()), keys, "expected int64 or timestamp"),
        (keys, times, pa.array([b"v", None]), "values hold nulls"),
    ]
    for k, ev, values, message in cases:
        with pytest.raises(KernelTypeError, match=message) as info:
            _core.pg_copy_rows(k, ev, None, values)
        assert "pg_copy_rows" in str(info.value)
        assert isinstance(info.value, BanquetError) and isinstance(info.value, TypeError)
    assert _core.pg_copy_rows(pa.array([b"a", b"a"]), times, None, keys) is None


def test_resp_evalsha_releases_the_gil() -> None:
    """Another Python thread runs while the buffer is built (before: the GIL was held)."""
    blobs = [bytes(24 << 20)] * 4  # ~100 MB to copy: tens of milliseconds
    keys = [b"k%d" % i for i in range(len(blobs))]
    zeros = [0] * len(blobs)
    inside = threading.Event()
    done = threading.Event()
    ran_inside = 0

    def spin() -> None:
        nonlocal ran_inside
        while not done.is_set():
            if inside.is_set():
                ran_inside += 1
            time.sleep(0)  # releases the GIL, so the main thread gets it back at once

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)  # no forced switches: only a released GIL lets spin() run
    thread = threading.Thread(target=spin)
    thread.start()
    try:
        for _ in range(5):
            inside.set()
            payload, calls = _core.resp_evalsha(
                b"sha",
                b"p:",
                [b"v", b"0"],
                pa.array(keys, pa.binary()),
                pa.array(zeros, pa.int64()),
                pa.array(zeros, pa.int64()),
                pa.array(blobs, pa.binary()),
                500,
            )
            inside.clear()
            assert calls == 1 and len(payload) > 96 << 20
            if ran_inside:
                break
    finally:
        done.set()
        inside.clear()
        thread.join()
        sys.setswitchinterval(old)
    assert ran_inside > 0


def test_resp_evalsha_refuses_bad_rows() -> None:
    k, one, v = pa.array([b"k"]), pa.array([1], pa.int64()), pa.array([b"v"])
    with pytest.raises(KernelTypeError, match="1 keys but") as info:
        _core.resp_evalsha(b"s", b"p:", [], k, one, pa.array([], pa.int64()), v, 500)
    assert isinstance(info.value, TypeError)
    with pytest.raises(KernelTypeError, match="values hold nulls"):
        _core.resp_evalsha(b"s", b"p:", [], k, one, None, pa.array([None], pa.binary()), 500)
    with pytest.raises(KernelTypeError, match="groups"):
        _core.resp_evalsha(b"s", b"p:", [], k, one, None, v, 500, pa.array([1], pa.int32()))
    with pytest.raises(KernelError, match="per_call"):
        _core.resp_evalsha(b"s", b"p:", [], k, one, one, v, 0)


def test_resp_evalsha_starts_a_call_at_each_group_change() -> None:
    keys = pa.array([b"a", b"b", b"c", b"d"])
    ev = pa.array([1, 2, 3, 4], pa.int64())
    slots = pa.array([5, 5, 9, 9], pa.uint16())
    _, calls = _core.resp_evalsha(b"s", b"p:", [], keys, ev, None, keys, 500, slots)
    assert calls == 2
    _, calls = _core.resp_evalsha(b"s", b"p:", [], keys, ev, None, keys, 500)
    assert calls == 1
