"""Windowed aggregations (issue #18): the definition (names, types, errors, registry
round-trip, apply checks), the Rust kernel against a brute-force Python reference (every
function, random windows and slides, ties, nulls, empty windows, one-row keys, several and
string keys), HyperLogLog error, and ``get_historical_features`` end to end on the file
offline store, in memory and partitioned on disk, and on Postgres."""

from __future__ import annotations

import math
import statistics
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from banquet import (
    BatchFeatureView,
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    KafkaSource,
    RepoConfig,
    StreamFeatureView,
    _core,
)
from banquet.aggregation import FUNCTIONS, Aggregation
from banquet.data_format import JsonFormat
from banquet.errors import (
    DefinitionError,
    DefinitionTypeError,
    KernelError,
    SourceColumnMissing,
)
from banquet.offline import join
from banquet.types import Float32, Float64, Int32, Int64, String

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1_000_000)
H = timedelta(hours=1)
H_US = 3_600_000_000
UTC_US = pa.timestamp("us", tz="UTC")
USER = Entity(name="user", join_keys=["user_id"])


# ---- definition ---------------------------------------------------------------------------


def tx_source(path: str = "tx.parquet") -> FileSource:
    return FileSource(name="tx", path=path, timestamp_field="ts")


def test_feature_names_and_types_follow_feast() -> None:
    aggs = [Aggregation(column="amount", function=f, time_window=H) for f in FUNCTIONS[:7]]
    aggs += [
        Aggregation(column="n", function="sum", time_window=timedelta(days=1)),
        Aggregation(column="n", function="max", time_window=timedelta(days=1)),
        Aggregation(column="merchant", function="count_distinct", time_window=H),
        Aggregation(
            column="merchant",
            function="approx_count_distinct",
            time_window=timedelta(days=7),
            slide_interval=H,
            name="merchants_7d",
        ),
    ]
    v = BatchFeatureView(
        name="tx_agg",
        entities=[USER],
        source=tx_source(),
        schema=[
            Field(name="amount", dtype=Float32),
            Field(name="n", dtype=Int32),
            Field(name="merchant", dtype=String),
        ],
        aggregations=aggs,
    )
    got = [(f.name, f.dtype) for f in v.features]
    assert got == [
        ("count_amount_3600s", Int64),
        ("sum_amount_3600s", Float64),
        ("mean_amount_3600s", Float64),
        ("min_amount_3600s", Float32),
        ("max_amount_3600s", Float32),
        ("last_amount_3600s", Float32),
        ("stddev_amount_3600s", Float64),
        ("sum_n_86400s", Int64),
        ("max_n_86400s", Int32),
        ("count_distinct_merchant_3600s", Int64),
        ("merchants_7d", Int64),
    ]
    # Feast's spelling of the name
    assert aggs[0].resolved_name(H) == "count_amount_3600s"
    # the schema lists the aggregated source columns, not the aggregates
    assert [f.name for f in v.schema] == ["amount", "n", "merchant"]
    assert v["sum_n_86400s"].projected_features == [Field(name="sum_n_86400s", dtype=Int64)]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"function": "median"}, DefinitionError, "unknown function 'median'"),
        ({"time_window": None}, DefinitionError, "time_window is required"),
        ({"time_window": 3600}, DefinitionTypeError, "must be a datetime.timedelta"),
        ({"time_window": timedelta(0)}, DefinitionError, "must be positive"),
        ({"slide_interval": timedelta(minutes=7)}, DefinitionError, "must divide"),
        ({"slide_interval": timedelta(hours=2)}, DefinitionError, "must divide"),
        ({"column": ""}, DefinitionError, "column must name"),
        ({"name": "bad name"}, DefinitionError, "invalid"),
    ],
)
def test_bad_aggregations_are_typed_errors(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    args: dict[str, Any] = {"column": "amount", "function": "sum", "time_window": H}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        Aggregation(**args)


def test_views_refuse_mixing_and_unknown_columns() -> None:
    amount = Field(name="amount", dtype=Float64)
    agg = Aggregation(column="amount", function="sum", time_window=H)
    with pytest.raises(DefinitionError, match="serves only its aggregates"):
        FeatureView(
            name="v",
            entities=[USER],
            source=tx_source(),
            schema=[amount, Field(name="plain", dtype=Int64)],
            aggregations=[agg],
        )
    with pytest.raises(DefinitionError, match="does not list"):
        FeatureView(
            name="v",
            entities=[USER],
            source=tx_source(),
            schema=[amount],
            aggregations=[Aggregation(column="other", function="sum", time_window=H)],
        )
    with pytest.raises(DefinitionError, match="cannot aggregate column 'merchant'"):
        FeatureView(
            name="v",
            entities=[USER],
            source=tx_source(),
            schema=[Field(name="merchant", dtype=String)],
            aggregations=[Aggregation(column="merchant", function="mean", time_window=H)],
        )
    with pytest.raises(DefinitionError, match="more than once"):
        FeatureView(
            name="v", entities=[USER], source=tx_source(), schema=[amount], aggregations=[agg, agg]
        )


def test_stream_view_takes_aggregations() -> None:
    src = KafkaSource(
        name="tx_stream",
        kafka_bootstrap_servers="127.0.0.1:9092",
        topic="tx",
        timestamp_field="ts",
        message_format=JsonFormat(),
        batch_source=tx_source(),
    )
    sfv = StreamFeatureView(
        name="tx_live",
        entities=[USER],
        source=src,
        schema=[Field(name="amount", dtype=Float64)],
        aggregations=[Aggregation(column="amount", function="max", time_window=H)],
    )
    assert [f.name for f in sfv.features] == ["max_amount_3600s"]
    back = FeatureView.from_dict(sfv.to_dict(), {"user": USER})
    assert isinstance(back, StreamFeatureView) and back == sfv


def write_tx(root: Path, rows: dict[str, list[Any]]) -> None:
    table = pa.table(
        {
            "user_id": pa.array(rows["user_id"], pa.int64()),
            "ts": pa.array(rows["ts"], pa.int64()).cast(UTC_US),
            "amount": pa.array(rows["amount"], pa.float64()),
            "merchant": pa.array(rows["merchant"], pa.string()),
        }
    )
    pq.write_table(table, root / "tx.parquet")


def open_store(root: Path, **offline: Any) -> FeatureStore:
    cfg = RepoConfig.from_dict(
        {
            "project": "agg",
            "registry": str(root / "registry.db"),
            "online_store": {"type": "sqlite", "path": str(root / "online.db")},
            "offline_store": {"type": "file", **offline},
        },
        repo_path=root,
    )
    return FeatureStore(config=cfg)


def agg_view(aggs: list[Aggregation], schema: list[Field] | None = None) -> BatchFeatureView:
    return BatchFeatureView(
        name="tx_agg",
        entities=[USER],
        source=tx_source(),
        schema=schema
        or [Field(name="amount", dtype=Float64), Field(name="merchant", dtype=String)],
        aggregations=aggs,
        online=False,
    )


def test_registry_round_trip_plan_and_apply_checks(tmp_path: Path) -> None:
    write_tx(tmp_path, {"user_id": [1], "ts": [T0_US], "amount": [1.0], "merchant": ["m"]})
    store = open_store(tmp_path)
    aggs = [
        Aggregation(column="amount", function="sum", time_window=H),
        Aggregation(
            column="merchant",
            function="count_distinct",
            time_window=timedelta(days=1),
            slide_interval=H,
        ),
    ]
    view = agg_view(aggs)
    store.apply([USER, view])
    got = FeatureStore(config=store.config).get_feature_view("tx_agg")
    assert isinstance(got, BatchFeatureView)
    assert got.aggregations == aggs and got.features == view.features
    # an unchanged definition plans nothing; a changed window plans a change
    assert store.plan([USER, view]).empty
    changed = agg_view(
        [
            aggs[0],
            Aggregation(
                column="merchant", function="count_distinct", time_window=timedelta(days=1)
            ),
        ]
    )
    d = store.plan([USER, changed])
    assert "tx_agg" in d.changed.get("feature_views", {})
    # apply checks that the source holds the aggregated columns
    missing = agg_view(
        [Aggregation(column="fee", function="sum", time_window=H)],
        schema=[Field(name="fee", dtype=Float64)],
    )
    with pytest.raises(SourceColumnMissing, match="'fee'"):
        store.apply([USER, missing])


# ---- the kernel against a brute-force reference --------------------------------------------


def reference(
    fn: str,
    window: int,
    slide: int | None,
    ek: list[Any],
    et: list[int | None],
    fk: list[Any],
    ft: list[int | None],
    fc: list[int | None] | None,
    fv: list[Any],
) -> list[Any]:
    out: list[Any] = []
    for k, t in zip(ek, et, strict=True):
        if k is None or t is None or (isinstance(k, tuple) and None in k):
            out.append(None)
            continue
        end = t - t % slide if slide else t  # Python's % floors: as on the UTC epoch
        rows = [
            j
            for j, (fkj, ftj) in enumerate(zip(fk, ft, strict=True))
            if fkj == k and ftj is not None and end - window < ftj <= end and fv[j] is not None
        ]
        xs = [fv[j] for j in rows]
        if fn == "count":
            out.append(len(xs))
        elif fn in ("count_distinct", "approx_count_distinct"):
            out.append(len(set(xs)))
        elif not xs:
            out.append(None)
        elif fn == "sum":
            out.append(sum(xs))
        elif fn == "mean":
            out.append(statistics.fmean(xs))
        elif fn == "stddev":
            out.append(statistics.stdev(xs) if len(xs) > 1 else None)
        elif fn == "min":
            out.append(min(xs))
        elif fn == "max":
            out.append(max(xs))
        elif fn == "last":
            created = fc or [None] * len(fk)
            best = max(rows, key=lambda j: (ft[j], created[j] is not None, created[j] or 0, j))
            out.append(fv[best])
    return out


def run_kernel(
    fn: str,
    window: int,
    slide: int | None,
    ek: list[pa.Array],
    et: list[int | None],
    fk: list[pa.Array],
    ft: list[int | None],
    fc: list[int | None] | None,
    values: pa.Array,
) -> list[Any]:
    out = _core.window_aggregate(
        ek,
        pa.array(et, pa.int64()),
        fk,
        pa.array(ft, pa.int64()),
        None if fc is None else pa.array(fc, pa.int64()),
        [values],
        [(fn, 0, window, slide)],
    )[0]
    if fn in ("min", "max", "last"):
        out = values.take(out)
    return out.to_pylist()  # type: ignore[no-any-return]


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


times = st.integers(min_value=-50, max_value=150)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    n_keys = draw(st.integers(1, 5))
    string_keys = draw(st.booleans())
    two_keys = draw(st.booleans())
    key = st.integers(0, n_keys)

    def mk(k: int, k2: int) -> Any:
        base: Any = f"u{k}" if string_keys else k
        return (base, k2) if two_keys else base

    n_f = draw(st.integers(0, 40))
    n_e = draw(st.integers(0, 15))
    fk = [mk(draw(key), draw(st.integers(0, 1))) for _ in range(n_f)]
    ek = [
        None if draw(st.integers(0, 20)) == 0 else mk(draw(key), draw(st.integers(0, 1)))
        for _ in range(n_e)
    ]
    ft = [draw(times) for _ in range(n_f)]
    et = [None if draw(st.integers(0, 20)) == 0 else draw(times) for _ in range(n_e)]
    fc = draw(
        st.one_of(
            st.none(), st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=n_f, max_size=n_f)
        )
    )
    window = draw(st.integers(1, 80))
    slide = draw(st.one_of(st.none(), st.integers(1, 30)))
    return {
        "fk": fk,
        "ek": ek,
        "ft": ft,
        "et": et,
        "fc": fc,
        "window": window,
        "slide": slide,
        "string_keys": string_keys,
        "two_keys": two_keys,
    }


def key_arrays(keys: list[Any], c: dict[str, Any]) -> list[pa.Array]:
    kt = pa.string() if c["string_keys"] else pa.int64()
    if not c["two_keys"]:
        return [pa.array(keys, kt)]
    return [
        pa.array([None if k is None else k[0] for k in keys], kt),
        pa.array([None if k is None else k[1] for k in keys], pa.int32()),
    ]


VALUE_KINDS = {
    "int": (pa.int64(), st.integers(-5, 5)),
    "float": (pa.float64(), st.floats(-100, 100, allow_nan=False).map(lambda x: round(x, 2))),
    "str": (pa.string(), st.sampled_from(["a", "b", "c", "dd"])),
}
FUNCTION_KINDS = {
    "count": ["int", "str"],
    "sum": ["int", "float"],
    "mean": ["int", "float"],
    "stddev": ["int", "float"],
    "min": ["int", "float"],
    "max": ["int", "float"],
    "last": ["int", "float", "str"],
    "count_distinct": ["int", "str"],
    "approx_count_distinct": ["int", "str"],
}


@settings(max_examples=60, deadline=None)
@given(c=cases(), data=st.data())
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_kernel_matches_brute_force(fn: str, c: dict[str, Any], data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(FUNCTION_KINDS[fn]))
    typ, strat = VALUE_KINDS[kind]
    fv = [data.draw(st.one_of(st.none(), strat)) for _ in c["fk"]]
    ek = [k if k is None or not c["two_keys"] else k for k in c["ek"]]
    got = run_kernel(
        fn,
        c["window"],
        c["slide"],
        key_arrays(ek, c),
        c["et"],
        key_arrays(c["fk"], c),
        c["ft"],
        c["fc"],
        pa.array(fv, typ),
    )
    want = reference(fn, c["window"], c["slide"], ek, c["et"], c["fk"], c["ft"], c["fc"], fv)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert close(g, w), (fn, kind, i, g, w, c)


def one(fn: str, window: int, slide: int | None, et: int, ft: list[int]) -> Any:
    return run_kernel(
        fn,
        window,
        slide,
        [pa.array([1])],
        [et],
        [pa.array([1] * len(ft), pa.int64())],
        list(ft),
        None,
        pa.array(list(range(len(ft))), pa.int64()),
    )[0]


def test_named_edges() -> None:
    # (T - w, T]: open at T - w, closed at T
    assert one("count", 10, None, 100, [90, 91, 100, 101]) == 2
    # a slide floors T to the tile boundary; on the boundary the window ends at T itself
    assert one("count", 20, 10, 100, [80, 81, 100]) == 2
    assert one("count", 20, 10, 109, [81, 105]) == 1
    assert one("count", 20, 10, -1, [-35, -15, -10, -5]) == 2  # floors to -10: (-30, -10]
    # ties: rows at the same instant are all in or all out; last takes the later row index
    assert one("count", 10, None, 100, [90, 90, 95, 95]) == 2
    assert one("last", 10, None, 100, [95, 95]) == 1
    # empty windows
    assert one("count", 10, None, 100, [50]) == 0
    assert one("count_distinct", 10, None, 100, []) == 0
    assert one("sum", 10, None, 100, [50]) is None
    assert one("stddev", 10, None, 100, [99]) is None  # sample stddev: null below 2 values
    assert one("stddev", 10, None, 100, [98, 99]) == pytest.approx(math.sqrt(0.5))


def test_stddev_of_equal_values_is_exactly_zero_as_the_window_slides() -> None:
    # a running sum of squares with removal leaves a residue (sqrt makes it ~1e-8); the
    # two-stack moments never subtract
    n = 500
    got = run_kernel(
        "stddev",
        7,
        None,
        [pa.array([1] * n)],
        list(range(n)),
        [pa.array([1] * n)],
        list(range(n)),
        None,
        pa.array([0.3] * n),
    )
    assert set(got[1:]) == {0.0}


def test_kernel_errors_are_typed() -> None:
    with pytest.raises(KernelError, match="unknown aggregate function"):
        _core.window_aggregate(
            [], pa.array([1]), [], pa.array([1]), None, [pa.array([1])], [("median", 0, 10, None)]
        )
    with pytest.raises(KernelError, match="overflows int64"):
        _core.window_aggregate(
            [pa.array([1])],
            pa.array([5]),
            [pa.array([1, 1])],
            pa.array([1, 2]),
            None,
            [pa.array([2**63 - 1, 1])],
            [("sum", 0, 10, None)],
        )
    with pytest.raises(KernelError):
        _core.window_aggregate(
            [pa.array([1])],
            pa.array([5]),
            [pa.array(["a"])],
            pa.array([1]),
            None,
            [pa.array([1])],
            [("sum", 0, 10, None)],
        )


@pytest.mark.parametrize("n", [1_000, 30_000, 300_000])
def test_hll_error_is_within_bounds(n: int) -> None:
    # standard error 1.04 / sqrt(2^14) ~ 0.81%: 4 sigma is 3.3%
    keys = pa.array([1] * n)
    vals = pa.array([f"v{i}" for i in range(n)])
    out = _core.window_aggregate(
        [pa.array([1])],
        pa.array([n]),
        [keys],
        pa.array(np.arange(n)),
        None,
        [vals],
        [("approx_count_distinct", 0, n + 1, None), ("count_distinct", 0, n + 1, None)],
    )
    approx, exact = out[0][0].as_py(), out[1][0].as_py()
    assert exact == n
    assert abs(approx - n) / n < 0.033


# ---- get_historical_features end to end -----------------------------------------------------


ALL_AGGS = [
    Aggregation(column="amount", function="count", time_window=2 * H),
    Aggregation(column="amount", function="sum", time_window=24 * H),
    Aggregation(column="amount", function="mean", time_window=7 * 24 * H),
    Aggregation(column="amount", function="max", time_window=24 * H, slide_interval=H),
    Aggregation(column="amount", function="min", time_window=3 * H),
    Aggregation(column="amount", function="last", time_window=5 * H),
    Aggregation(column="amount", function="stddev", time_window=12 * H),
    Aggregation(
        column="merchant", function="count_distinct", time_window=24 * H, slide_interval=2 * H
    ),
    Aggregation(column="merchant", function="approx_count_distinct", time_window=24 * H),
]


def random_rows(n: int, n_keys: int, seed: int) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    amount = [None if rng.random() < 0.1 else round(float(x), 3) for x in rng.normal(size=n)]
    return {
        "user_id": [int(x) for x in rng.integers(0, n_keys, n)],
        "ts": [int(T0_US + x) for x in rng.integers(0, 48, n) * (H_US // 4)],
        "amount": amount,
        "merchant": [None if rng.random() < 0.1 else f"m{x}" for x in rng.integers(0, 9, n)],
    }


def entity_df(n: int, n_keys: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "user_id": pa.array(rng.integers(0, n_keys + 2, n)),
            "event_timestamp": pa.array(
                T0_US + rng.integers(-4, 60, n) * (H_US // 3), pa.int64()
            ).cast(UTC_US),
        }
    )


def expected(rows: dict[str, list[Any]], ent: pa.Table, a: Aggregation) -> list[Any]:
    vals = rows[a.column]
    ek = ent.column("user_id").to_pylist()
    et = ent.column("event_timestamp").cast(pa.int64()).to_pylist()
    return reference(
        a.function, a.window_us, a.slide_us, ek, et, rows["user_id"], rows["ts"], None, vals
    )


@pytest.mark.parametrize("memory_limit", [None, "64KiB"])
def test_historical_features_match_the_reference(
    tmp_path: Path, memory_limit: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts: list[int] = []
    real = join._FeatureSpill._aggregate_part

    def counting(self: Any, *a: Any) -> Any:
        parts.append(1)
        return real(self, *a)

    monkeypatch.setattr(join._FeatureSpill, "_aggregate_part", counting)
    rows = random_rows(3000, 40, seed=3)
    write_tx(tmp_path, rows)
    offline = {"memory_limit": memory_limit, "spill_dir": str(tmp_path / "spill")}
    store = open_store(tmp_path, **({} if memory_limit is None else offline))
    view = agg_view(ALL_AGGS)
    store.apply([USER, view])
    ent = entity_df(700, 40, seed=4)
    refs = [f"tx_agg:{a.feature_name}" for a in ALL_AGGS]
    out = store.get_historical_features(ent, refs, full_feature_names=True).to_arrow()
    assert out.column_names == ["user_id", "event_timestamp"] + [
        f"tx_agg__{a.feature_name}" for a in ALL_AGGS
    ]
    assert out.column("user_id").equals(ent.column("user_id"))  # one row per entity row, in order
    assert bool(parts) == (memory_limit is not None)  # the partitioned path ran when limited
    for a in ALL_AGGS:
        got = out.column(f"tx_agg__{a.feature_name}").to_pylist()
        want = expected(rows, ent, a)
        if a.function == "approx_count_distinct":  # tiny counts: HLL's linear counting is exact
            assert got == want
            continue
        bad = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if not close(g, w)]
        assert not bad, (a.feature_name, bad[:5])


def test_subset_alias_and_time_zones(tmp_path: Path) -> None:
    rows: dict[str, list[Any]] = {
        "user_id": [1, 1, 1],
        "ts": [T0_US, T0_US + H_US, T0_US + 2 * H_US],
        "amount": [1.0, 2.0, 4.0],
        "merchant": ["a", "b", "a"],
    }
    write_tx(tmp_path, rows)
    store = open_store(tmp_path)
    view = agg_view(ALL_AGGS)
    store.apply([USER, view])
    # 02:00 and 02:30 UTC given at UTC+1: the same instants
    import pandas as pd

    local = pd.to_datetime(["2024-01-01 03:00", "2024-01-01 03:30"]).tz_localize("Etc/GMT-1")
    df = pd.DataFrame({"user_id": [1, 1], "event_timestamp": local})
    feats = ["tx_agg:sum_amount_86400s", "tx_agg:count_amount_7200s"]
    out = store.get_historical_features(df, feats).to_df()
    assert out["sum_amount_86400s"].tolist() == [7.0, 7.0]
    assert out["count_amount_7200s"].tolist() == [2, 2]  # (00:00, 02:00] holds 01:00 and 02:00


@pytest.mark.postgres
def test_postgres_offline_store_matches_the_reference(tmp_path: Path, pg_dsn: str) -> None:
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from banquet import PostgreSQLSource

    rows = random_rows(800, 12, seed=5)
    name = f"aggpg_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
        conn.execute(
            f'CREATE TABLE "{name}".tx (user_id bigint, ts timestamptz, amount double '
            "precision, merchant text)"
        )
        with conn.cursor().copy(
            f'COPY "{name}".tx (user_id, ts, amount, merchant) FROM STDIN'
        ) as cp:
            for u, t, a, m in zip(
                rows["user_id"], rows["ts"], rows["amount"], rows["merchant"], strict=True
            ):
                when = datetime.fromtimestamp(t / 1e6, tz=timezone.utc)
                cp.write_row((u, when, a, m))
    try:
        d = conninfo_to_dict(pg_dsn)
        cfg = RepoConfig.from_dict(
            {
                "project": "aggpg",
                "registry": str(tmp_path / "registry.db"),
                "online_store": {"type": "sqlite", "path": str(tmp_path / "online.db")},
                "offline_store": {
                    "type": "postgres",
                    "host": d.get("host", "127.0.0.1"),
                    "port": int(str(d.get("port", 5432))),
                    "database": d.get("dbname"),
                    "user": d.get("user"),
                    "password": d.get("password", ""),
                    "db_schema": name,
                },
            },
            repo_path=tmp_path,
        )
        store = FeatureStore(config=cfg)
        view = BatchFeatureView(
            name="tx_agg",
            entities=[USER],
            source=PostgreSQLSource(name="tx_pg", table="tx", timestamp_field="ts"),
            schema=[Field(name="amount", dtype=Float64), Field(name="merchant", dtype=String)],
            aggregations=ALL_AGGS,
            online=False,
        )
        store.apply([USER, view])
        ent = entity_df(300, 12, seed=6)
        refs = [f"tx_agg:{a.feature_name}" for a in ALL_AGGS]
        out = store.get_historical_features(ent, refs).to_arrow()
        for a in ALL_AGGS:
            got = out.column(a.feature_name).to_pylist()
            want = expected(rows, ent, a)
            bad = [
                (i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if not close(g, w)
            ]
            assert not bad, (a.feature_name, bad[:5])
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
