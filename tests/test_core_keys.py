"""banquet._core entity-key serialization (Feast entity_key_serialization_version 3) and hashing."""

from __future__ import annotations

import random
import struct
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from banquet import _core

GOLDEN = [
    (
        {"driver_id": pa.array([1001], pa.int64())},
        "01000000 02000000 09000000 6472697665725f6964 04000000 08000000 e903000000000000",
    ),
    (
        {"driver_id": pa.array([1001], pa.int64()), "customer_id": pa.array(["c1"])},
        "02000000 02000000 0b000000 637573746f6d65725f6964 02000000 09000000 "
        "6472697665725f6964 02000000 02000000 6331 04000000 08000000 e903000000000000",
    ),
    ({"k": pa.array([7], pa.int32())}, "01000000 02000000 01000000 6b 03000000 04000000 07000000"),
]


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


def reference_key(values: dict[str, object], types: dict[str, str]) -> bytes:
    """A plain-Python statement of the v3 format, written from the spec."""
    out = [struct.pack("<I", len(values))]
    names = sorted(values)
    for name in names:
        raw = name.encode()
        out.append(struct.pack("<II", 2, len(raw)) + raw)
    for name in names:
        v, t = values[name], types[name]
        if t == "int32":
            out.append(struct.pack("<IIi", 3, 4, v))
        elif t == "int64":
            out.append(struct.pack("<IIq", 4, 8, v))
        elif t == "string":
            raw = v.encode()
            out.append(struct.pack("<II", 2, len(raw)) + raw)
        elif t == "binary":
            out.append(struct.pack("<II", 1, len(v)) + v)
        else:
            raise AssertionError(t)
    return b"".join(out)


@pytest.mark.parametrize("columns,expected", GOLDEN)
def test_golden_vectors(columns, expected):
    out = _core.serialize_entity_keys(list(columns), list(columns.values()))
    assert isinstance(out, pa.Array)
    assert out.type == pa.binary()
    assert out.to_pylist() == [_hex(expected)]


def test_matches_reference_on_random_rows():
    rnd = random.Random(7)
    n = 500
    cols = {
        "zeta": ("int64", [rnd.randint(-(2**63), 2**63 - 1) for _ in range(n)]),
        "alpha": (
            "string",
            ["".join(rnd.choice("aé☃xyz") for _ in range(rnd.randint(0, 9))) for _ in range(n)],
        ),
        "mid": ("int32", [rnd.randint(-(2**31), 2**31 - 1) for _ in range(n)]),
        "blob": (
            "binary",
            [bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 5))) for _ in range(n)],
        ),
    }
    arrow_type = {
        "int64": pa.int64(),
        "int32": pa.int32(),
        "string": pa.string(),
        "binary": pa.binary(),
    }
    out = _core.serialize_entity_keys(
        list(cols), [pa.array(v, arrow_type[t]) for t, v in cols.values()]
    ).to_pylist()
    types = {name: t for name, (t, _) in cols.items()}
    for i in range(n):
        row = {name: v[i] for name, (_, v) in cols.items()}
        assert out[i] == reference_key(row, types)


def test_string_and_binary_layouts_agree():
    values = ["a", "", "a value longer than twelve bytes"]
    base = _core.serialize_entity_keys(["s"], [pa.array(values, pa.string())])
    assert _core.serialize_entity_keys(["s"], [pa.array(values, pa.large_string())]).equals(base)
    assert _core.serialize_entity_keys(["s"], [pa.array(values, pa.string_view())]).equals(base)
    raw = [v.encode() for v in values]
    b = _core.serialize_entity_keys(["s"], [pa.array(raw, pa.binary())])
    assert _core.serialize_entity_keys(["s"], [pa.array(raw, pa.large_binary())]).equals(b)
    # same bytes, different Feast value type (bytes = 1, string = 2)
    assert b[0].as_py()[13:17] == struct.pack("<I", 1)
    assert base[0].as_py()[13:17] == struct.pack("<I", 2)


def test_sliced_input():
    arr = pa.array([1, 2, 3, 4], pa.int64())
    whole = _core.serialize_entity_keys(["k"], [arr])
    assert _core.serialize_entity_keys(["k"], [arr.slice(2)]).to_pylist() == whole.to_pylist()[2:]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_keys_are_whole_seconds(unit):
    dt = datetime(2024, 5, 1, 12, 30, 15, 999000, tzinfo=timezone.utc)
    arr = pa.array([dt], pa.timestamp(unit, tz="UTC"))
    out = _core.serialize_entity_keys(["t"], [arr])[0].as_py()
    seconds = int(dt.replace(microsecond=0).timestamp())
    assert out.endswith(struct.pack("<IIq", 8, 8, seconds))


def test_null_key_raises_naming_the_column():
    with pytest.raises(_core.KernelError, match="driver_id"):
        _core.serialize_entity_keys(
            ["customer_id", "driver_id"], [pa.array(["a", "b"]), pa.array([1, None])]
        )


def test_bad_arguments():
    with pytest.raises(TypeError, match="'f'"):
        _core.serialize_entity_keys(["f"], [pa.array([1.0])])
    with pytest.raises(_core.KernelError):
        _core.serialize_entity_keys(["a", "b"], [pa.array([1])])
    with pytest.raises(_core.KernelError):
        _core.serialize_entity_keys(["a", "b"], [pa.array([1]), pa.array([1, 2])])
    with pytest.raises(_core.KernelError, match="twice"):
        _core.serialize_entity_keys(["a", "a"], [pa.array([1]), pa.array([1])])


def test_empty_key_is_feasts():
    # Feast 0.67: serialize_entity_key(EntityKey(join_keys=[], entity_values=[]), 3)
    out = _core.serialize_entity_keys([], [], rows=2)
    assert out.type == pa.binary() and out.to_pylist() == [_hex("00000000")] * 2
    assert _core.serialize_entity_keys([], [], rows=0).to_pylist() == []
    with pytest.raises(_core.KernelError, match="empty_entity_keys"):
        _core.serialize_entity_keys([], [])  # no columns, no row count
    with pytest.raises(_core.KernelError, match="rows=3"):
        _core.serialize_entity_keys(["k"], [pa.array([1, 2], pa.int64())], rows=3)
    got = _core.serialize_entity_keys(["k"], [pa.array([1, 2], pa.int64())], rows=2)
    assert got == _core.serialize_entity_keys(["k"], [pa.array([1, 2], pa.int64())])


def test_feast_dummy_entity_key():
    # Feast 0.67 stores an entity-less view's rows under {"__dummy_id": ""} (a string value)
    out = _core.serialize_entity_keys(["__dummy_id"], [pa.array([""])])
    assert out.to_pylist() == [
        _hex("01000000 02000000 0a000000 5f5f64756d6d795f6964 02000000 00000000")
    ]


PEERS = Path(__file__).resolve().parents[1] / "benches" / ".venv-peers" / "bin" / "python"


@pytest.mark.skipif(not PEERS.exists(), reason="no benches/.venv-peers with a real Feast")
def test_empty_and_dummy_keys_equal_real_feasts():
    script = (
        "from feast.infra.key_encoding_utils import serialize_entity_key as s\n"
        "from feast.protos.feast.types.EntityKey_pb2 import EntityKey as K\n"
        "from feast.protos.feast.types.Value_pb2 import Value as V\n"
        "dummy = K(join_keys=['__dummy_id'], entity_values=[V(string_val='')])\n"
        "print(s(K(), 3).hex(), s(dummy, 3).hex())"
    )
    proc = subprocess.run(
        [str(PEERS), "-c", script], capture_output=True, text=True, timeout=120, cwd="/"
    )
    if proc.returncode != 0:
        pytest.skip(f"the peer venv has no working Feast: {proc.stderr[-300:]}")
    empty, dummy = (bytes.fromhex(h) for h in proc.stdout.split())
    assert _core.serialize_entity_keys([], [], rows=1).to_pylist() == [empty]
    assert _core.serialize_entity_keys(["__dummy_id"], [pa.array([""])]).to_pylist() == [dummy]


def test_empty():
    out = _core.serialize_entity_keys(["k"], [pa.array([], pa.int64())])
    assert len(out) == 0 and out.type == pa.binary()


def test_hash_entity_keys():
    keys = _core.serialize_entity_keys(["driver_id"], [pa.array([1001, 1002], pa.int64())])
    h = _core.hash_entity_keys(keys)
    assert h.type == pa.uint64()
    # xxh3-64 reference values (checked against the python `xxhash` package)
    assert h[0].as_py() == 0x33347E923A7414D9
    assert h[0].as_py() != h[1].as_py()
    assert _core.hash_entity_keys(pa.array([b"", None], pa.binary())).to_pylist() == [
        0x2D06800538D394C2,
        None,
    ]
    assert _core.hash_entity_keys(keys.cast(pa.large_binary())).equals(h)
    with pytest.raises(TypeError):
        _core.hash_entity_keys(pa.array([1]))


def test_accepts_any_arrow_c_array_exporter():
    class Exporter:
        def __init__(self, arr):
            self._arr = arr

        def __arrow_c_array__(self, requested_schema=None):
            return self._arr.__arrow_c_array__(requested_schema)

    out = _core.serialize_entity_keys(["k"], [Exporter(pa.array([7], pa.int32()))])
    assert out[0].as_py() == _hex(GOLDEN[2][1])
