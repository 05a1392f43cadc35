"""banquet._core.asof_join against a brute-force reference of the point-in-time rule.

A feature row matches an entity row when all keys are equal and
``entity_ts - ttl <= feature_ts <= entity_ts`` (ttl None/0 = unbounded). The winner is the
latest feature_ts, then the larger created (null smallest), then the larger row index.
Null keys or timestamps never match.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banquet import _core

TS = pa.timestamp("us", tz="UTC")


def reference(entity_keys, entity_ts, feature_keys, feature_ts, feature_created, ttl):
    """Pure-Python as-of join over lists (None = null)."""
    n_feat = len(feature_ts)
    out = []
    for e, t in enumerate(entity_ts):
        key = tuple(col[e] for col in entity_keys)
        if t is None or any(k is None for k in key):
            out.append(None)
            continue
        best = None
        for f in range(n_feat):
            ft = feature_ts[f]
            fkey = tuple(col[f] for col in feature_keys)
            if ft is None or any(k is None for k in fkey) or fkey != key:
                continue
            if ft > t or (ttl and ft < t - ttl):
                continue
            c = feature_created[f] if feature_created is not None else None
            rank = (ft, c is not None, c if c is not None else 0, f)
            if best is None or rank > best:
                best = rank
        out.append(None if best is None else best[3])
    return out


def run(
    entity_keys,
    entity_ts,
    feature_keys,
    feature_ts,
    feature_created=None,
    ttl=None,
    key_types=None,
    ts_type=TS,
):
    """Calls the kernel on Python lists, returns a list of indices / None."""
    key_types = key_types or [pa.int64()] * len(entity_keys)
    ek = [pa.array(c, type=t) for c, t in zip(entity_keys, key_types)]
    fk = [pa.array(c, type=t) for c, t in zip(feature_keys, key_types)]
    created = None if feature_created is None else pa.array(feature_created, type=ts_type)
    got = _core.asof_join(
        ek,
        pa.array(entity_ts, type=ts_type),
        fk,
        pa.array(feature_ts, type=ts_type),
        created,
        ttl,
    )
    assert isinstance(got, pa.Array)
    assert got.type == pa.uint32()
    assert len(got) == len(entity_ts)
    return got.to_pylist()


def check(
    entity_keys, entity_ts, feature_keys, feature_ts, feature_created=None, ttl=None, key_types=None
):
    got = run(entity_keys, entity_ts, feature_keys, feature_ts, feature_created, ttl, key_types)
    want = reference(entity_keys, entity_ts, feature_keys, feature_ts, feature_created, ttl)
    assert got == want
    return got


# --- property test -----------------------------------------------------------------------

KINDS = ["int64", "string", "int+string", "int32", "binary"]


def key_strategy(kind: str, domain: int):
    ints = st.integers(0, domain - 1)
    if kind in ("int64", "int32"):
        base = [ints]
    elif kind == "string":
        base = [ints.map(lambda i: f"key-{i}" if i % 2 else "k" * (i * 7))]
    elif kind == "binary":
        base = [ints.map(lambda i: bytes([i]) * (1 + i % 3))]
    else:
        base = [ints, ints.map(lambda i: f"s{i}")]
    return base


def key_types(kind: str):
    return {
        "int64": [pa.int64()],
        "int32": [pa.int32()],
        "string": [pa.string()],
        "binary": [pa.binary()],
        "int+string": [pa.int64(), pa.string()],
    }[kind]


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(KINDS))
    domain = draw(st.integers(1, 4))
    n_ent = draw(st.integers(0, 12))
    n_feat = draw(st.integers(0, 16))
    null_p = draw(st.sampled_from([0.0, 0.0, 0.15]))
    t_lo = draw(st.integers(-5, 5))
    t_hi = t_lo + draw(st.integers(0, 12))
    ts_value = st.integers(t_lo, t_hi)

    def maybe_null(strategy):
        if null_p == 0.0:
            return strategy
        return st.one_of(st.none(), strategy) if draw(st.booleans()) else strategy

    cols = key_strategy(kind, domain)
    entity_keys = [draw(st.lists(maybe_null(c), min_size=n_ent, max_size=n_ent)) for c in cols]
    feature_keys = [draw(st.lists(maybe_null(c), min_size=n_feat, max_size=n_feat)) for c in cols]
    entity_ts = draw(st.lists(maybe_null(ts_value), min_size=n_ent, max_size=n_ent))
    feature_ts = draw(st.lists(maybe_null(ts_value), min_size=n_feat, max_size=n_feat))
    created = None
    if draw(st.booleans()):
        created = draw(
            st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=n_feat, max_size=n_feat)
        )
    # ttl: unbounded, small, or exactly the distance between two drawn timestamps (so that
    # rows land right on the ttl boundary).
    stamps = [t for t in entity_ts + feature_ts if t is not None]
    diffs = sorted({abs(a - b) for a in stamps for b in stamps}) or [0]
    ttl = draw(
        st.one_of(
            st.none(),
            st.just(0),
            st.integers(1, 6),
            st.sampled_from(diffs),
        )
    )
    return kind, entity_keys, entity_ts, feature_keys, feature_ts, created, ttl


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_matches_reference(case):
    kind, ek, et, fk, ft, created, ttl = case
    check(ek, et, fk, ft, created, ttl, key_types(kind))


# --- named edge cases ---------------------------------------------------------------------


def test_basic():
    got = check([[1, 2, 1, 3]], [10, 10, 5, 10], [[1, 1, 2, 1]], [4, 8, 10, 11])
    assert got == [1, 2, 0, None]


def test_created_breaks_ts_tie():
    got = check([[7]], [100], [[7, 7, 7]], [50, 50, 50], [3, 5, 4])
    assert got == [1]


def test_full_tie_goes_to_largest_index():
    assert check([[7]], [100], [[7, 7, 7]], [50, 50, 50]) == [2]
    assert check([[7]], [100], [[7, 7, 7]], [50, 50, 50], [5, 5, 5]) == [2]
    assert check([[7]], [100], [[7, 7, 7]], [50, 50, 50], [None, None, None]) == [2]


def test_null_created_is_smallest():
    assert check([[7]], [100], [[7, 7, 7]], [50, 50, 50], [None, 0, None]) == [1]


def test_later_ts_beats_larger_created():
    assert check([[7]], [100], [[7, 7]], [50, 51], [100, 1]) == [1]


@pytest.mark.parametrize("ttl", [10])
def test_ttl_boundaries_inclusive(ttl):
    # exactly entity_ts - ttl and exactly entity_ts both match; one more microsecond out does not
    assert check([[1]], [100], [[1]], [90], ttl=ttl) == [0]
    assert check([[1]], [100], [[1]], [100], ttl=ttl) == [0]
    assert check([[1]], [100], [[1]], [89], ttl=ttl) == [None]
    assert check([[1]], [100], [[1]], [101], ttl=ttl) == [None]


def test_best_candidate_outside_ttl_means_null():
    assert check([[1]], [100], [[1, 1]], [80, 85], ttl=10) == [None]
    assert check([[1]], [100], [[1, 1]], [80, 95], ttl=10) == [1]


@pytest.mark.parametrize("ttl", [None, 0])
def test_ttl_none_and_zero_are_unbounded(ttl):
    assert check([[1]], [10**15], [[1]], [-(10**15)], ttl=ttl) == [0]


def test_future_rows_excluded():
    assert check([[1, 1]], [10, 20], [[1, 1]], [11, 21]) == [None, 0]


def test_null_keys_and_timestamps_never_match():
    got = check(
        [[1, None, 1, 2]],
        [10, 10, None, 10],
        [[1, None, 2, 1, 2]],
        [5, 6, None, None, 1],
    )
    assert got == [0, None, None, 4]


def test_empty_entity_side():
    assert check([[]], [], [[1, 2]], [1, 2]) == []


def test_empty_feature_side():
    assert check([[1, 2]], [1, 2], [[]], []) == [None, None]


def test_both_empty():
    assert check([[]], [], [[]], []) == []


def test_duplicate_entity_rows():
    assert check([[1, 1, 1]], [5, 5, 5], [[1, 1]], [1, 2]) == [1, 1, 1]


def test_output_in_entity_order():
    got = check([[3, 1, 2, 1]], [9, 9, 9, 0], [[1, 2, 3]], [1, 2, 3])
    assert got == [2, 0, 1, None]


@pytest.mark.parametrize(
    "typ", [pa.string(), pa.large_string(), pa.string_view(), pa.binary(), pa.large_binary()]
)
def test_string_and_binary_keys(typ):
    raw = ["alice", "bob", "a much longer key than twelve bytes", ""]
    vals = (
        raw
        if typ in (pa.string(), pa.large_string(), pa.string_view())
        else [s.encode() for s in raw]
    )
    ek = [vals[0], vals[1], vals[2], vals[3], None]
    fk = [vals[1], vals[0], vals[2], vals[3], vals[0][:-1], None]
    got = run([ek], [5] * 5, [fk], [1, 2, 3, 4, 5, 5], key_types=[typ])
    assert got == [1, 0, 2, 3, None]


def test_composite_keys():
    got = check(
        [[1, 1, 2, 2], ["x", "y", "x", "y"]],
        [10, 10, 10, 10],
        [[1, 2, 2, 1, 1], ["y", "x", "y", "x", "y"]],
        [1, 2, 3, 4, 11],
        key_types=[pa.int32(), pa.string()],
    )
    assert got == [3, 0, 1, 2]


def test_int32_keys():
    assert check([[-3, 4, None]], [10] * 3, [[4, -3, -3]], [1, 2, 3], key_types=[pa.int32()]) == [
        2,
        0,
        None,
    ]


def test_timestamp_keys():
    typ = pa.timestamp("s", tz="UTC")
    assert run([[100, 200]], [10, 10], [[200, 100]], [1, 2], key_types=[typ]) == [1, 0]


def test_sparse_int64_keys():
    keys = [(i * 0x9E3779B97F4A7C15) % (1 << 63) - (1 << 62) for i in range(2000)]
    got = run([keys], [10] * 2000, [keys[::-1]], [5] * 2000)
    assert got == list(range(1999, -1, -1))


def test_int64_timestamps_accepted():
    got = run([[1]], [10], [[1]], [5], ts_type=pa.int64())
    assert got == [0]


def test_mismatched_key_types_raise():
    with pytest.raises(_core.KernelError, match="key column 0"):
        _core.asof_join(
            [pa.array([1], pa.int64())],
            pa.array([1], TS),
            [pa.array([1], pa.int32())],
            pa.array([1], TS),
            None,
            None,
        )


def test_mismatched_key_count_raises():
    with pytest.raises(_core.KernelError):
        _core.asof_join([pa.array([1])], pa.array([1], TS), [], pa.array([1], TS), None, None)


def test_length_mismatch_raises():
    with pytest.raises(_core.KernelError):
        _core.asof_join(
            [pa.array([1, 2])], pa.array([1], TS), [pa.array([1])], pa.array([1], TS), None, None
        )
    with pytest.raises(_core.KernelError):
        _core.asof_join(
            [pa.array([1])],
            pa.array([1], TS),
            [pa.array([1])],
            pa.array([1], TS),
            pa.array([1, 2], TS),
            None,
        )


def test_negative_ttl_raises():
    with pytest.raises(_core.KernelError):
        _core.asof_join(
            [pa.array([1])], pa.array([1], TS), [pa.array([1])], pa.array([1], TS), None, -1
        )


def test_unsupported_types_raise_type_error():
    with pytest.raises(TypeError):
        _core.asof_join(
            [pa.array([1.0])], pa.array([1], TS), [pa.array([1.0])], pa.array([1], TS), None, None
        )
    with pytest.raises(TypeError):
        _core.asof_join(
            [pa.array([1])],
            pa.array([1], pa.timestamp("ms")),
            [pa.array([1])],
            pa.array([1], TS),
            None,
            None,
        )


def test_sliced_inputs():
    ek = pa.array([9, 9, 1, 2, 9])[2:4]
    et = pa.array([0, 0, 10, 10, 0], TS)[2:4]
    fk = pa.array([9, 2, 1, 9])[1:3]
    ft = pa.array([0, 3, 4, 0], TS)[1:3]
    got = _core.asof_join([ek], et, [fk], ft, None, None)
    assert got.to_pylist() == [1, 0]


def test_larger_random_against_reference():
    import random

    rnd = random.Random(7)
    n_ent, n_feat = 400, 3000
    ek = [rnd.randrange(30) for _ in range(n_ent)]
    et = [rnd.randrange(1000) for _ in range(n_ent)]
    fk = [rnd.randrange(30) for _ in range(n_feat)]
    ft = [rnd.randrange(1000) for _ in range(n_feat)]
    fc = [rnd.choice([None, 1, 2]) for _ in range(n_feat)]
    for ttl in (None, 50):
        check([ek], et, [fk], ft, fc, ttl)


def _with_hidden_values(values, valid, typ=None):
    """An array whose null slots hide arbitrary (non-zero) values."""
    import numpy as np

    typ = typ or pa.int64()

    data = pa.py_buffer(np.asarray(values, dtype=np.int64).tobytes())
    bitmap = pa.array(valid, pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(typ, len(values), [bitmap, data], null_count=valid.count(False))


def test_values_hidden_under_nulls_are_ignored():
    # Null created hiding large values: the tie still goes to the larger index.
    created = _with_hidden_values([99, 5, -7], [False, False, False], TS)
    got = _core.asof_join(
        [pa.array([7])],
        pa.array([100], TS),
        [pa.array([7, 7, 7])],
        pa.array([50] * 3, TS),
        created,
        None,
    )
    assert got.to_pylist() == [2]
    # A null key hiding the right value, a null ts hiding a valid time: no match.
    fk = _with_hidden_values([7, 7], [False, True])
    ft = _with_hidden_values([60, 70], [True, False], TS)
    got = _core.asof_join([pa.array([7])], pa.array([100], TS), [fk], ft, None, None)
    assert got.to_pylist() == [None]


def test_take_rows_reads_chunked_columns_like_take():
    ints = pa.chunked_array([[1, None, 3], [], [4, 5]], pa.int64())
    strs = pa.chunked_array([["a", "b"], [None, "d", "e"]])
    stamps = pa.chunked_array([pa.array([1, 2, 3, 4, 5], TS)])
    idx = pa.array([4, None, 0, 1, 2, 4], pa.uint32())
    got = _core.take_rows([ints, strs, stamps], idx)
    for col, out in zip([ints, strs, stamps], got):
        assert out.equals(col.combine_chunks().take(idx))
    assert got[2].type == TS


def test_take_rows_rejects_bad_indices():
    col = pa.chunked_array([[1, 2]], pa.int64())
    with pytest.raises(_core.KernelError, match="out of range"):
        _core.take_rows([col], pa.array([2], pa.uint32()))
    with pytest.raises(TypeError, match="uint32"):
        _core.take_rows([col], pa.array([0], pa.int64()))
