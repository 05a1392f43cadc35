"""banquet._core latest_per_key and the online value codec (encode_values / decode_values)."""

from __future__ import annotations

import contextlib
import math
import random
import struct
import threading
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from banquet import _core

UTC_US = pa.timestamp("us", tz="UTC")

# --- latest_per_key ----------------------------------------------------------------------------


def reference_latest(keys, ts, created, start, end):
    """Winner per key: max (event ts, created ts with None smallest, row index)."""
    best = {}
    for i, (k, t) in enumerate(zip(keys, ts, strict=False)):
        if (
            k is None
            or t is None
            or any(part is None for part in (k if isinstance(k, tuple) else (k,)))
        ):
            continue
        if (start is not None and t < start) or (end is not None and t > end):
            continue
        c = created[i] if created is not None else None
        rank = (t, (0, 0) if c is None else (1, c), i)
        if k not in best or rank > best[k]:
            best[k] = rank
    return sorted(r[2] for r in best.values())


def test_latest_tie_rules():
    keys = pa.array([1, 1, 2, 2, 3, 3, 3], pa.int64())
    ts = pa.array([10, 20, 5, 5, 7, 7, 7], pa.int64())
    created = pa.array([None, None, 2, 1, 1, None, 1], pa.int64())
    out = _core.latest_per_key([keys], ts, created, None, None)
    assert out.type == pa.uint32()
    assert out.to_pylist() == [1, 2, 6]


def test_latest_window_inclusive_and_nulls_skipped():
    keys = pa.array([1, 1, 1, None, 2, 3], pa.int64())
    ts = pa.array([10, 20, 30, 20, None, 15], UTC_US)
    assert _core.latest_per_key([keys], ts, None, 10, 20).to_pylist() == [1, 5]
    assert _core.latest_per_key([keys], ts, None, 21, None).to_pylist() == [2]
    assert _core.latest_per_key([keys], ts, None, None, 9).to_pylist() == []
    assert _core.latest_per_key([keys], ts, None, None, None).to_pylist() == [2, 5]


@pytest.mark.parametrize("seed", range(5))
def test_latest_matches_reference(seed):
    rnd = random.Random(seed)
    n = rnd.randint(1, 3000)

    def maybe(v, p=0.03):
        return None if rnd.random() < p else v

    k1 = [maybe(rnd.randint(0, 40)) for _ in range(n)]
    k2 = [maybe(rnd.choice(["a", "b", "", "ccc"])) for _ in range(n)]
    ts = [maybe(rnd.randint(0, 25)) for _ in range(n)]
    created = [maybe(rnd.randint(0, 3), 0.3) for _ in range(n)]
    start, end = (3, 20) if seed % 2 else (None, None)
    ts_arr = pa.array(ts, pa.int64())
    c_arr = pa.array(created, pa.int64())
    got = _core.latest_per_key([pa.array(k1, pa.int64())], ts_arr, c_arr, start, end)
    assert got.to_pylist() == reference_latest(k1, ts, created, start, end)
    got = _core.latest_per_key([pa.array(k2)], ts_arr, c_arr, start, end)
    assert got.to_pylist() == reference_latest(k2, ts, created, start, end)
    pairs = [None if a is None or b is None else (a, b) for a, b in zip(k1, k2, strict=False)]
    got = _core.latest_per_key(
        [pa.array(k1, pa.int32()), pa.array(k2, pa.large_string())], ts_arr, c_arr, start, end
    )
    assert got.to_pylist() == reference_latest(pairs, ts, created, start, end)


def test_latest_errors():
    with pytest.raises(_core.KernelError):
        _core.latest_per_key([pa.array([1, 2])], pa.array([1], pa.int64()), None, None, None)
    with pytest.raises(TypeError):
        _core.latest_per_key([pa.array([1])], pa.array([1], pa.timestamp("s")), None, None, None)
    with pytest.raises(TypeError):
        _core.latest_per_key([pa.array([1.0])], pa.array([1], pa.int64()), None, None, None)
    with pytest.raises(_core.KernelError):
        _core.latest_per_key([], pa.array([1], pa.int64()), None, None, None)


# --- value codec -----------------------------------------------------------------------------

SCALARS = {
    "bool": (pa.bool_(), [True, None, False, True, None]),
    "i32": (pa.int32(), [-(2**31), 0, None, 7, -1]),
    "i64": (pa.int64(), [2**63 - 1, None, 0, -5, 1]),
    "f32": (pa.float32(), [1.5, -0.0, None, float("inf"), 3.0]),
    "f64": (pa.float64(), [None, 1e300, 2.25, 0.0, -1e-300]),
    "s": (pa.string(), ["héllo", "", None, "x", "a longer string value ☃"]),
    "bin": (pa.binary(), [b"\x00\x01", None, b"", b"\xff", b"z"]),
    "t": (
        UTC_US,
        [
            datetime(2024, 1, 1, tzinfo=timezone.utc),
            None,
            datetime(1960, 1, 1, tzinfo=timezone.utc),
            datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc),
            datetime(1970, 1, 1, tzinfo=timezone.utc),
        ],
    ),
}


def _list_values(values):
    present = [v for v in values if v is not None]
    # [v, null], null, [], [v], [null]
    return [[present[0], None], None, [], [present[1]], [None]]


def all_types_table() -> pa.Table:
    cols, fields = [], []
    for name, (typ, values) in SCALARS.items():
        fields.append(pa.field(name, typ))
        cols.append(pa.array(values, typ))
    for name, (typ, values) in SCALARS.items():
        for lt, prefix in ((pa.list_(typ), "l_"), (pa.large_list(typ), "ll_")):
            fields.append(pa.field(prefix + name, lt))
            cols.append(pa.array(_list_values(values), lt))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def _encode(table: pa.Table, event, created=None, named=True):
    cols = [c.combine_chunks() for c in table.columns]
    if named:
        return _core.encode_values(event, created, cols, schema=table.schema)
    return _core.encode_values(event, created, cols)


def _same(a: pa.Array, b: pa.Array):
    assert a.type == b.type
    assert a.to_pylist() == b.to_pylist() or _nan_equal(a.to_pylist(), b.to_pylist())


def _nan_equal(x, y):
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or x == y
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_nan_equal(a, b) for a, b in zip(x, y, strict=False))
    return x == y


@pytest.mark.parametrize("named", [True, False])
def test_round_trip_every_type(named):
    table = all_types_table()
    n = table.num_rows
    event = pa.array([10, 20, 30, 40, 50], UTC_US)
    created = pa.array([1, 2, None, 4, 5], UTC_US)
    blobs = _encode(table, event, created, named)
    assert blobs.type == pa.binary() and len(blobs) == n and blobs.null_count == 0
    ev, cr, cols = _core.decode_values(blobs, table.schema)
    assert ev.type == UTC_US and cr.type == UTC_US
    assert ev.equals(event)
    assert cr.equals(created)
    assert len(cols) == table.num_columns
    for got, want in zip(cols, table.columns, strict=False):
        _same(got, want.combine_chunks())


def test_nan_and_negative_zero_bits_survive():
    vals = pa.array([float("nan"), -0.0, float("-inf")], pa.float64())
    blobs = _core.encode_values(pa.array([1, 2, 3], pa.int64()), None, [vals])
    _, _, (out,) = _core.decode_values(blobs, pa.schema([("x", pa.float64())]))
    assert [struct.pack("<d", v) for v in out.to_pylist()] == [
        struct.pack("<d", v) for v in vals.to_pylist()
    ]


def test_null_blobs_decode_to_nulls_everywhere():
    table = all_types_table()
    blobs = _encode(table, pa.array([1, 2, 3, 4, 5], UTC_US))
    looked_up = pa.array([None, blobs[3].as_py(), None], pa.binary())
    ev, cr, cols = _core.decode_values(looked_up, table.schema)
    assert ev.to_pylist()[0] is None and ev.to_pylist()[2] is None
    assert ev[1].value == 4
    assert cr.null_count == 3
    for got, want in zip(cols, table.columns, strict=False):
        assert got.type == want.type
        assert got.to_pylist()[0] is None and got.to_pylist()[2] is None
        assert _nan_equal(got.to_pylist()[1], want.to_pylist()[3])


def test_decode_follows_the_given_layouts():
    strings = pa.array(["a", None, "", "dd"])
    lists = pa.array([[1], None, [], [None, 2]], pa.list_(pa.int64()))
    blobs = _core.encode_values(pa.array([1, 2, 3, 4], pa.int64()), None, [strings, lists])
    for s_type, l_type in [
        (pa.large_string(), pa.large_list(pa.int64())),
        (pa.string_view(), pa.list_(pa.field("element", pa.int64()))),
    ]:
        _, _, (s, lst) = _core.decode_values(blobs, pa.schema([("s", s_type), ("l", l_type)]))
        assert s.type == s_type and lst.type == l_type
        assert s.to_pylist() == strings.to_pylist()
        assert lst.to_pylist() == lists.to_pylist()
    tz = pa.timestamp("us", tz="Europe/Paris")
    blobs = _core.encode_values(pa.array([1], pa.int64()), None, [pa.array([5], tz)])
    _, _, (t,) = _core.decode_values(blobs, pa.schema([("t", tz)]))
    assert t.type == tz and t.cast(pa.int64()).to_pylist() == [5]


def test_large_binary_blobs_decode_too():
    blobs = _core.encode_values(pa.array([1], pa.int64()), None, [pa.array([3], pa.int32())])
    _, _, (x,) = _core.decode_values(blobs.cast(pa.large_binary()), pa.schema([("x", pa.int32())]))
    assert x.to_pylist() == [3]


def test_schema_change_raises_corrupt_data_error():
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    blobs = _core.encode_values(
        pa.array([1], pa.int64()), None, [pa.array([1]), pa.array(["x"])], schema=schema
    )
    for other in [
        pa.schema([("a", pa.int64()), ("renamed", pa.string())]),
        pa.schema([("b", pa.string()), ("a", pa.int64())]),
        pa.schema([("a", pa.float64()), ("b", pa.string())]),
        pa.schema([("a", pa.int64())]),
        pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.bool_())]),
    ]:
        with pytest.raises(_core.CorruptDataError, match="re-materialize"):
            _core.decode_values(blobs, other)
    # CorruptDataError is a KernelError is a ValueError
    assert issubclass(_core.CorruptDataError, _core.KernelError)
    assert issubclass(_core.KernelError, ValueError)


def test_truncated_and_garbage_blobs():
    table = all_types_table()
    blobs = _encode(table, pa.array([1, 2, 3, 4, 5], UTC_US), pa.array([1, 2, 3, 4, 5], UTC_US))
    blob = blobs[0].as_py()
    for cut in range(len(blob)):
        with pytest.raises(_core.CorruptDataError):
            _core.decode_values(pa.array([blob[:cut]], pa.binary()), table.schema)
    with pytest.raises(_core.CorruptDataError):
        _core.decode_values(pa.array([blob + b"\x00"], pa.binary()), table.schema)
    rnd = random.Random(3)
    for _ in range(2000):
        b = bytearray(blob)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        with contextlib.suppress(_core.CorruptDataError):
            _core.decode_values(pa.array([bytes(b)], pa.binary()), table.schema)
    for _ in range(2000):
        b = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 80)))
        with contextlib.suppress(_core.CorruptDataError):
            _core.decode_values(pa.array([b], pa.binary()), table.schema)


def test_encode_errors():
    with pytest.raises(_core.KernelError, match="event_ts"):
        _core.encode_values(pa.array([None, 1], pa.int64()), None, [])
    with pytest.raises(_core.KernelError):
        _core.encode_values(pa.array([1], pa.int64()), None, [pa.array([1, 2])])
    with pytest.raises(TypeError):
        _core.encode_values(pa.array([1], pa.int64()), None, [pa.array([1], pa.uint8())])
    with pytest.raises(TypeError):
        _core.encode_values(pa.array([1], pa.timestamp("ns")), None, [])
    with pytest.raises(_core.KernelError):
        _core.encode_values(
            pa.array([1], pa.int64()), None, [pa.array([1])], schema=pa.schema([("a", pa.string())])
        )
    with pytest.raises(TypeError):
        _core.decode_values(pa.array([], pa.binary()), pa.schema([("d", pa.date32())]))


def test_kernels_release_the_gil():
    import time

    n = 3_000_000
    keys = pa.array(range(n), pa.int64())  # all distinct: one long call
    ts = pa.array(range(n), pa.int64())
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        time.sleep(0.01)
        t0 = time.perf_counter()
        _core.latest_per_key([keys], ts, None, None, None)
        t1 = time.perf_counter()
    finally:
        stop.set()
        t.join()
    during = [x for x in ticks if t0 < x < t1]
    # with the GIL held the ticker could not run at all during the call
    assert len(during) >= min(10, (t1 - t0) / 0.005), (len(during), t1 - t0)
