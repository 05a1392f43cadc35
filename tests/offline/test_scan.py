"""The Rust Parquet scan (``_core.ParquetDataset``) against pyarrow's dataset read + filter on
random data: key types (int32, int64, string, two columns), time units s/ms/us/ns with and
without a time zone, null keys and timestamps, several files and row groups, hive directories;
the same rows in the same order, the same types."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from banquet._core import ParquetDataset, parquet_schema, scan_parquet
from banquet.errors import DataSourceError, KeyTypeError, SourceFileNotFound

_dir_counter = itertools.count()

KEY_KINDS = ["int32", "int64", "string", "multi"]
UNITS = ["s", "ms", "us", "ns"]
SECOND_US = 1_000_000


def _bound(us: int, t: pa.DataType) -> pa.Scalar:
    """The scan's rule for a bound in the column's type: seconds and milliseconds floored."""
    if t.unit == "s":
        return pa.scalar(us // SECOND_US, t)
    if t.unit == "ms":
        return pa.scalar(us // 1_000, t)
    if t.unit == "us":
        return pa.scalar(us, t)
    return pa.scalar(us * 1_000, t)


@st.composite
def datasets(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(KEY_KINDS))
    unit = draw(st.sampled_from(UNITS))
    tz = draw(st.sampled_from([None, "UTC"]))
    n_files = draw(st.integers(1, 3))
    hive = draw(st.booleans())
    files = []
    for _ in range(n_files):
        n = draw(st.integers(0, 30))
        keys = draw(st.lists(st.one_of(st.none(), st.integers(0, 9)), min_size=n, max_size=n))
        secs = draw(st.lists(st.one_of(st.none(), st.integers(0, 100)), min_size=n, max_size=n))
        rg = draw(st.integers(1, 8))
        part = draw(st.integers(0, 2))
        files.append((keys, secs, rg, part))
    ent = draw(st.lists(st.integers(0, 12), max_size=6))
    lo = draw(st.one_of(st.none(), st.integers(-5, 100)))
    hi = draw(st.one_of(st.none(), st.integers(-5, 110)))
    frac = draw(st.integers(0, 999_999))
    semi = draw(st.booleans())
    return {
        "kind": kind,
        "unit": unit,
        "tz": tz,
        "files": files,
        "hive": hive,
        "entity": ent,
        "lo": None if lo is None else lo * SECOND_US + frac,
        "hi": None if hi is None else hi * SECOND_US + frac,
        "semi": semi,
    }


def _key_arrays(kind: str, keys: list[int | None]) -> dict[str, pa.Array]:
    if kind == "int32":
        return {"k": pa.array(keys, pa.int32())}
    if kind == "int64":
        return {"k": pa.array(keys, pa.int64())}
    text = [None if k is None else f"id-{k}" for k in keys]
    if kind == "string":
        return {"k": pa.array(text, pa.string())}
    return {"k": pa.array(keys, pa.int64()), "s": pa.array(text, pa.string())}


def _write(root: Path, spec: dict[str, Any]) -> Path:
    t = pa.timestamp(spec["unit"], tz=spec["tz"])
    factor = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[spec["unit"]]
    for i, (keys, secs, rg, part) in enumerate(spec["files"]):
        cols = _key_arrays(spec["kind"], keys)
        cols["ts"] = pa.array(
            [None if s is None else s * factor + i for s in secs], pa.int64()
        ).cast(t)
        cols["v"] = pa.array([float(j) for j in range(len(keys))], pa.float64())
        folder = root / f"part={part}" if spec["hive"] else root
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), folder / f"f{i:02d}.parquet", row_group_size=rg)
    return root


def _reference(root: Path, spec: dict[str, Any], columns: list[str]) -> pa.Table:
    dataset = ds.dataset(str(root), format="parquet", partitioning="hive")
    t = dataset.schema.field("ts").type
    cond = None
    for us, op in ((spec["lo"], "ge"), (spec["hi"], "le")):
        if us is None:
            continue
        e = ds.field("ts") >= _bound(us, t) if op == "ge" else ds.field("ts") <= _bound(us, t)
        cond = e if cond is None else cond & e
    need = list(dict.fromkeys([*columns, *_key_names(spec)]))
    table = dataset.to_table(columns=need, filter=cond)
    if spec["semi"]:
        want = {tuple(k.values()) for k in _entity_rows(spec)}
        names = _key_names(spec)
        rows = zip(*(table.column(n).to_pylist() for n in names), strict=True)
        mask = [None not in r and r in want for r in rows]
        table = table.filter(pa.array(mask, pa.bool_()))
    return table.select(columns)


def _key_names(spec: dict[str, Any]) -> list[str]:
    return ["k", "s"] if spec["kind"] == "multi" else ["k"]


def _entity_rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for e in spec["entity"]:
        if spec["kind"] in ("int32", "int64"):
            out.append({"k": e})
        elif spec["kind"] == "string":
            out.append({"k": f"id-{e}"})
        else:
            out.append({"k": e, "s": f"id-{e}"})
    return out


def _entity_keys(spec: dict[str, Any]) -> list[pa.Array]:
    rows = _entity_rows(spec)
    names = _key_names(spec)
    # entity keys are int64 / large_string: widths and layouts differ from the files'
    types = {
        "k": pa.large_string() if spec["kind"] == "string" else pa.int64(),
        "s": pa.large_string(),
    }
    return [pa.array([r[n] for r in rows], types[n]) for n in names]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=datasets())
def test_scan_equals_pyarrow_dataset_read_and_filter(tmp_path: Path, spec: dict[str, Any]) -> None:
    root = _write(tmp_path / f"d{next(_dir_counter)}", spec)
    dataset = ParquetDataset(str(root))
    columns = [*_key_names(spec), "ts", "v", *(["part"] if spec["hive"] else [])]
    keys = _entity_keys(spec) if spec["semi"] else None
    reader = dataset.scan(
        columns,
        ts_column="ts",
        lo_us=spec["lo"],
        hi_us=spec["hi"],
        key_columns=_key_names(spec),
        entity_keys=keys,
        batch_rows=7,
    )
    got = reader.read_all()
    want = _reference(root, spec, columns)
    assert got.schema.equals(want.schema), (got.schema, want.schema)
    assert got.equals(want), (got.to_pydict(), want.to_pydict())
    assert dataset.schema.equals(
        ds.dataset(str(root), format="parquet", partitioning="hive").schema, check_metadata=False
    )


def test_semi_join_of_a_large_file_keeps_file_order(tmp_path: Path) -> None:
    n = 200_000
    path = tmp_path / "big.parquet"
    keys = pa.array([i % 5_000 for i in range(n)], pa.int64())
    pq.write_table(
        pa.table(
            {
                "k": keys,
                "ts": pa.array(range(n), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                "v": pa.array(range(n), pa.float64()),
            }
        ),
        path,
        row_group_size=30_000,
    )
    wanted = pa.array([7, 4_999, 123, 7], pa.int64())
    got = scan_parquet(str(path), ["k", "v"], "ts", None, None, ["k"], [wanted]).read_all()
    ref = pq.read_table(path, columns=["k", "v"])
    ref = ref.filter(pc.is_in(ref.column("k"), value_set=wanted))
    assert got.equals(ref)
    assert parquet_schema(str(path)).names == ["k", "ts", "v"]


def test_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(SourceFileNotFound, match="nope.parquet"):
        ParquetDataset(str(tmp_path / "nope.parquet"))
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not a parquet file, just some bytes")
    with pytest.raises(DataSourceError, match="bad.parquet"):
        ParquetDataset(str(bad))
    ok = tmp_path / "ok.parquet"
    pq.write_table(pa.table({"k": [1], "ts": pa.array([1], pa.timestamp("us"))}), ok)
    with pytest.raises(DataSourceError, match="'zz'|\"zz\""):
        ParquetDataset(str(ok)).scan(["zz"])
    with pytest.raises(DataSourceError, match="expected a timestamp"):
        ParquetDataset(str(ok)).scan(["k"], ts_column="k", lo_us=0)


def test_s3_scan_equals_the_local_scan(s3_bucket: Any, tmp_path: Path) -> None:
    """The same hive dataset on the local S3 server (written through the S3 API) and on disk:
    the same rows, order and types, with the time range and the semi-join pushed down."""
    from banquet import FileSource
    from banquet.s3 import storage_options

    local = tmp_path / "local"
    for part, keys in ((1, [3, 1, 2, 1]), (2, [2, 9, 3])):
        table = pa.table(
            {
                "k": pa.array(keys, pa.int64()),
                "ts": pa.array([i * SECOND_US for i in range(len(keys))], pa.int64()).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "v": pa.array([f"p{part}-{i}" for i in range(len(keys))]),
            }
        )
        s3_bucket.put_parquet(f"d/part={part}/x.parquet", table)
        (local / f"part={part}").mkdir(parents=True)
        pq.write_table(table, local / f"part={part}" / "x.parquet")
    url = s3_bucket.url("d/")
    src = FileSource(
        name="s", path=url, timestamp_field="ts", s3_endpoint_override=s3_bucket.endpoint
    )
    opts = storage_options(src)
    assert opts is not None
    remote = ParquetDataset(url, opts)
    assert remote.files == [
        s3_bucket.url("d/part=1/x.parquet"),
        s3_bucket.url("d/part=2/x.parquet"),
    ]
    args: dict[str, Any] = {
        "ts_column": "ts",
        "lo_us": SECOND_US,
        "key_columns": ["k"],
        "entity_keys": [pa.array([1, 2, 3])],
    }
    got = remote.scan(["k", "v", "part"], **args).read_all()
    want = ParquetDataset(str(local)).scan(["k", "v", "part"], **args).read_all()
    assert got.equals(want)
    assert got.column("v").to_pylist() == ["p1-1", "p1-2", "p1-3", "p2-2"]
    with pytest.raises(SourceFileNotFound, match="nothing-here"):
        ParquetDataset(s3_bucket.url("nothing-here/"), opts)


def test_scan_view_is_read_view_restricted_to_the_entity_keys(
    tmp_path: Path, tmp_repo: Any
) -> None:
    """``FileOfflineStore.scan_view``: read_view's columns (field_mapping applied), in source
    order, only rows whose key occurs among the entity keys; a file whose key column holds
    strings for an int64 join key is read_view's KeyTypeError (the keys are matched after
    read_view's cast, not compared as they are)."""
    from banquet import Entity, FeatureStore, FeatureView, Field, FileSource
    from banquet.types import Float64, Int64

    store = FeatureStore(repo_path=tmp_repo())
    n = 50
    ts = pa.array([i * SECOND_US for i in range(n)], pa.int64()).cast(pa.timestamp("us", "UTC"))
    user = Entity(name="user", join_keys=["user_id"])
    for key_type in (pa.int32(), pa.string()):
        path = tmp_path / f"src-{key_type}.parquet"
        uid = pa.array([i % 9 for i in range(n)], pa.int64()).cast(key_type)
        score = pa.array([float(i) for i in range(n)])
        table = pa.table({"uid": uid, "event_timestamp": ts, "created": ts, "score_src": score})
        pq.write_table(table, path, row_group_size=7)
        src = FileSource(
            name="src",
            path=str(path),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
            field_mapping={"uid": "user_id", "score_src": "score"},
        )
        fv = FeatureView(
            name="v",
            entities=[user],
            schema=[Field(name="user_id", dtype=Int64), Field(name="score", dtype=Float64)],
            source=src,
        )
        feats = list(fv.features)
        lo, hi = 5 * SECOND_US, 40 * SECOND_US
        if key_type == pa.string():
            with pytest.raises(KeyTypeError, match="user_id"):
                store.offline_store.scan_view(fv, feats, lo, hi, [pa.array([3])]).read_all()
            continue
        full = store.offline_store.read_view(fv, feats, lo, hi)
        keys = pa.array([3, 5, 99], pa.int64())
        got = store.offline_store.scan_view(fv, feats, lo, hi, [keys]).read_all()
        assert got.column_names == ["user_id", "event_timestamp", "created", "score"]
        mask = pc.is_in(full.keys[0], value_set=keys)
        assert got.equals(full.table.filter(mask)), key_type
        assert got.num_rows == 8  # keys 3 (rows 12 21 30 39) and 5 (rows 5 14 23 32)
        everything = store.offline_store.scan_view(fv, feats, lo, hi).read_all()
        assert everything.equals(full.table)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=datasets(), order_seed=st.integers(0, 2**32 - 1))
def test_locate_then_take_equals_the_one_pass_scan(
    tmp_path: Path, spec: dict[str, Any], order_seed: int
) -> None:
    """The two-pass read (``offline.join.join_two_pass``): a ``locate`` scan of the key and
    time columns, then ``take`` of the other columns at its locators in any order (repeats,
    nulls) gives the rows the one-pass scan gives."""
    import random

    root = _write(tmp_path / f"d{next(_dir_counter)}", spec)
    dataset = ParquetDataset(str(root))
    keys = _key_names(spec)
    rest = ["v", *(["part"] if spec["hive"] else [])]
    args: dict[str, Any] = {
        "ts_column": "ts",
        "lo_us": spec["lo"],
        "hi_us": spec["hi"],
        "key_columns": keys,
        "entity_keys": _entity_keys(spec) if spec["semi"] else None,
        "batch_rows": 7,
    }
    one = dataset.scan([*keys, "ts", *rest], **args).read_all()
    located = dataset.scan([*keys, "ts"], locate=True, **args).read_all()
    assert located.column_names == [*keys, "ts", "__banquet_row"]
    assert located.select([*keys, "ts"]).equals(one.select([*keys, "ts"]))
    locs = located.column("__banquet_row").to_pylist()
    order: list[int | None] = list(range(len(locs)))
    rng = random.Random(order_seed)
    rng.shuffle(order)
    order += [None] + order[:3]  # a null and repeats
    asked = pa.array([None if i is None else locs[i] for i in order], pa.uint64())
    got = dataset.take(rest, asked)
    assert got.schema.names == rest
    want = one.select(rest).take(pa.array(order, pa.int64()))
    for name in rest:
        assert got.column(name).equals(want.column(name).combine_chunks()), name
