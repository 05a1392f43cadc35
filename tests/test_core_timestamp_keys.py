"""A timestamp join key is its whole second in every kernel (#13).

The serialized entity key (Feast v3) stores a timestamp as whole seconds, so keys equal to
the second are one entity online; ``latest_per_key`` and ``asof_join`` must use the same
identity or historical and online retrieval disagree. ``asof_join`` once compared the raw
values.
"""

from __future__ import annotations

import pyarrow as pa

from banquet import _core

S = 1_000_000


def _keys(unit: str, values: list[int]) -> pa.Array:
    return pa.array(values, pa.timestamp(unit, tz="UTC"))


def test_sub_second_keys_are_one_entity_in_every_kernel() -> None:
    # 10.2 s / 10.7 s, and -0.5 s / -0.9 s (both floor to -1 s)
    ent = _keys("us", [10 * S + 200_000, -S // 2])
    feat = _keys("us", [10 * S + 700_000, -S + 100_000])

    assert _core.serialize_entity_keys(["k"], [ent]) == _core.serialize_entity_keys(["k"], [feat])

    both = pa.concat_arrays([ent, feat])
    won = _core.latest_per_key([both], pa.array([1, 4, 2, 3], pa.int64()), None, None, None)
    assert won.to_pylist() == [1, 2]

    got = _core.asof_join(
        [ent], pa.array([100, 100], pa.int64()), [feat], pa.array([50, 60], pa.int64()), None, None
    )
    assert got.to_pylist() == [0, 1]


def test_nanosecond_keys_with_a_second_key_column() -> None:
    ent = _keys("ns", [5_000_000_001, 5_999_999_999])
    feat = _keys("ns", [5_500_000_000, 6_000_000_000])
    ids = pa.array([7, 7], pa.int64())
    got = _core.asof_join(
        [ids, ent],
        pa.array([100, 100], pa.int64()),
        [ids, feat],
        pa.array([50, 60], pa.int64()),
        None,
        None,
    )
    # both entity rows are second 5; only feature row 0 is
    assert got.to_pylist() == [0, 0]
