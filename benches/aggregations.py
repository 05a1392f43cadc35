"""Offline windowed aggregations (issue #18): banquet vs DuckDB vs polars, same data, same run,
outputs compared.

Events: ``user_id`` (int64), ``ts`` (timestamp us UTC, over 30 days), ``amount`` (float64, 2%
null). Entity rows: random keys and times in the same span. Four aggregates of ``amount``,
exact sliding windows ``(T - w, T]``: count 1h, sum 24h, mean 7d, max 24h.

Sizes (10x apart): ``1m`` = 1M events, 10k keys, 100k entity rows; ``10m`` = 10M events, 100k
keys, 1M entity rows.

How the peers compute it. A window function evaluated at the *events* and then as-of joined to
the entity rows answers "the window ending at the last event before T", not "(T - w, T]"
(rows that left the window between that event and T still count): it is not the same number.
So both peers evaluate their window functions at the entity rows themselves: the entity rows
are appended to the events as probe rows with a null amount, sorted after the events of the
same instant, and the window aggregates are read at the probe rows:
- DuckDB: ``count/sum/avg/max(amount) OVER (PARTITION BY user_id ORDER BY ts RANGE BETWEEN
  INTERVAL (w - 1 us) PRECEDING AND CURRENT ROW)`` (microsecond times: ``[T - w + 1us, T]`` is
  ``(T - w, T]``), one pass per window size;
- polars: ``rolling_{sum,max}_by("ts", window_size=w, closed="right").over("user_id")`` on the
  union sorted by (user_id, ts, probe).
banquet: ``get_historical_features`` on a ``BatchFeatureView`` with the four ``Aggregation``s
(file offline store; the scan, key semi-join and the Rust kernel).

Each peer runs in its own process (peak RSS from ``ru_maxrss``) and runs the query twice; the
time reported is the faster run (the first, also reported, pays cold costs). The timed part
reads the Parquet files and computes the result in entity row order. Outputs are compared with the
first peer's (counts exactly, floats to 1e-9 relative).

    .venv/bin/python benches/aggregations.py              # both sizes
    .venv/bin/python benches/aggregations.py --sizes 1m
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PEERS_PY = Path(os.environ.get("BENCH_PEERS_PYTHON") or C.PEERS_PY)
if not PEERS_PY.exists():  # a worktree: the main tree's peers venv
    PEERS_PY = Path("/work/main/benches/.venv-peers/bin/python")

SIZES = {  # events, keys, entity rows
    "1m": (1_000_000, 10_000, 100_000),
    "10m": (10_000_000, 100_000, 1_000_000),
}
DAY_US = 86_400_000_000
H_US = 3_600_000_000
SPAN_US = 30 * DAY_US
T0_US = 1_704_067_200_000_000  # 2024-01-01 UTC
AGGS = [  # (name, function, window_us)
    ("count_amount_3600s", "count", H_US),
    ("sum_amount_86400s", "sum", 24 * H_US),
    ("mean_amount_604800s", "mean", 7 * 24 * H_US),
    ("max_amount_86400s", "max", 24 * H_US),
]
PEERS = ["banquet", "duckdb", "polars"]
DATA = C.DATA / "aggregations"


def size_dir(size: str) -> Path:
    return DATA / size


def ensure_data(size: str) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = size_dir(size)
    if (d / "done").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    n_ev, n_keys, n_ent = SIZES[size]
    rng = np.random.default_rng(18)
    ts = np.sort(T0_US + rng.integers(0, SPAN_US, n_ev))  # a log: in time order
    amount = rng.gamma(2.0, 20.0, n_ev).round(2)
    nulls = rng.random(n_ev) < 0.02
    events = pa.table(
        {
            "user_id": pa.array(rng.integers(0, n_keys, n_ev)),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "amount": pa.array(amount, mask=nulls),
        }
    )
    pq.write_table(events, d / "events.parquet", row_group_size=1 << 20)
    entity = pa.table(
        {
            "user_id": pa.array(rng.integers(0, n_keys, n_ent)),
            "event_timestamp": pa.array(T0_US + rng.integers(0, SPAN_US, n_ent), pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
        }
    )
    pq.write_table(entity, d / "entity.parquet")
    (d / "done").write_text("")
    return d


# ---- peers (each runs in a child process) ---------------------------------------------------


def peer_banquet(d: Path):
    import pyarrow.dataset  # noqa: F401  (pq.read_table's import, not part of the query)
    import pyarrow.parquet as pq

    from banquet import BatchFeatureView, Entity, FeatureStore, Field, FileSource, RepoConfig
    from banquet import __version__ as version
    from banquet.aggregation import Aggregation
    from banquet.types import Float64

    repo = d / "banquet-repo"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir()
    cfg = RepoConfig.from_dict(
        {
            "project": "agg_bench",
            "registry": str(repo / "registry.db"),
            "online_store": {"type": "sqlite", "path": str(repo / "online.db")},
            "offline_store": {"type": "file"},
        },
        repo_path=repo,
    )
    store = FeatureStore(config=cfg)
    user = Entity(name="user", join_keys=["user_id"])
    from datetime import timedelta

    view = BatchFeatureView(
        name="tx",
        entities=[user],
        source=FileSource(name="events", path=str(d / "events.parquet"), timestamp_field="ts"),
        schema=[Field(name="amount", dtype=Float64)],
        aggregations=[
            Aggregation(column="amount", function=f, time_window=timedelta(microseconds=w))
            for _, f, w in AGGS
        ],
        online=False,
    )
    store.apply([user, view])
    refs = [f"tx:{name}" for name, _, _ in AGGS]

    def run():
        entity = pq.read_table(d / "entity.parquet")
        out = store.get_historical_features(entity, refs).to_arrow()
        return out.select([name for name, _, _ in AGGS])

    return run, version


def peer_duckdb(d: Path):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {os.cpu_count()}")
    ev, en = d / "events.parquet", d / "entity.parquet"

    def window_sql(fn: str, w_us: int, name: str) -> str:
        frame = (
            f"OVER (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL "
            f"'{w_us - 1} microseconds' PRECEDING AND CURRENT ROW)"
        )
        return f"{fn}(amount) {frame} AS {name}"

    cols = ",\n          ".join(
        window_sql({"mean": "avg"}.get(f, f), w, name) for name, f, w in AGGS
    )
    sql = f"""
    WITH probes AS (
        SELECT user_id, event_timestamp AS ts, row_number() OVER () - 1 AS rid
        FROM read_parquet('{en}')
    ),
    u AS (
        SELECT user_id, ts, amount, NULL::BIGINT AS rid FROM read_parquet('{ev}')
        UNION ALL
        SELECT user_id, ts, NULL::DOUBLE AS amount, rid FROM probes
    ),
    w AS (
        SELECT rid,
          {cols}
        FROM u
    )
    SELECT {", ".join(name for name, _, _ in AGGS)} FROM w WHERE rid IS NOT NULL ORDER BY rid
    """

    def run():
        return con.execute(sql).to_arrow_table()

    return run, f"duckdb {duckdb.__version__}"


def peer_polars(d: Path):
    import polars as pl

    def run():
        ev = pl.read_parquet(d / "events.parquet").with_columns(
            pl.lit(None, pl.UInt32).alias("rid")
        )
        en = pl.read_parquet(d / "entity.parquet").with_row_index("rid")
        probes = en.select(
            "user_id",
            pl.col("event_timestamp").alias("ts"),
            pl.lit(None, pl.Float64).alias("amount"),
            "rid",
        )
        # events before the probes of the same instant, so a probe's window holds them all
        u = pl.concat([ev, probes]).sort(["user_id", "ts", "rid"], nulls_last=False)
        present = pl.col("amount").is_not_null().cast(pl.Int64)
        filled = pl.col("amount").fill_null(0.0)

        def roll(expr: pl.Expr, how: str, w_us: int) -> pl.Expr:
            window = f"{w_us}us"
            fn = getattr(expr, f"rolling_{how}_by")
            return fn("ts", window_size=window, closed="right").over("user_id")

        c1h = roll(present, "sum", H_US)
        c24 = roll(present, "sum", 24 * H_US)
        c7d = roll(present, "sum", 7 * 24 * H_US)
        s24 = roll(filled, "sum", 24 * H_US)
        s7d = roll(filled, "sum", 7 * 24 * H_US)
        m24 = roll(pl.col("amount").fill_null(float("-inf")), "max", 24 * H_US)
        out = (
            u.with_columns(
                c1h.alias("count_amount_3600s"),
                pl.when(c24 > 0).then(s24).alias("sum_amount_86400s"),
                pl.when(c7d > 0).then(s7d / c7d).alias("mean_amount_604800s"),
                pl.when(c24 > 0).then(m24).alias("max_amount_86400s"),
            )
            .filter(pl.col("rid").is_not_null())
            .sort("rid")
            .select([name for name, _, _ in AGGS])
        )
        return out.to_arrow()

    return run, f"polars {pl.__version__}"


PEER_FNS = {"banquet": peer_banquet, "duckdb": peer_duckdb, "polars": peer_polars}


def child_main(args: argparse.Namespace) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = size_dir(args.size)
    run, version = PEER_FNS[args.peer](d)
    times = []
    for _ in range(2):  # the first run pays cold costs (page cache, lazy imports, pools)
        gc.collect()
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    peak = C.rss_mb("VmHWM")
    out = pa.table({name: out.column(name) for name, _, _ in AGGS})
    # one type per column across peers (duckdb/polars counts may be other integer widths)
    out = out.cast(
        pa.schema([(n, pa.int64() if f == "count" else pa.float64()) for n, f, _ in AGGS])
    )
    pq.write_table(out, args.out)
    C.report(
        {
            "peer": args.peer,
            "version": version,
            "wall_s": min(times),
            "first_s": times[0],
            "peak_mb": peak,
            "rows": out.num_rows,
        }
    )


# ---- parent ---------------------------------------------------------------------------------


def compare(a_path: Path, b_path: Path) -> list[str]:
    import numpy as np
    import pyarrow.parquet as pq

    a, b = pq.read_table(a_path), pq.read_table(b_path)
    if a.num_rows != b.num_rows:
        return [f"{a.num_rows} vs {b.num_rows} rows"]
    problems = []
    for name, f, _ in AGGS:
        x, y = (
            a.column(name).to_numpy(zero_copy_only=False),
            b.column(name).to_numpy(zero_copy_only=False),
        )
        xn = a.column(name).is_null().to_numpy(zero_copy_only=False)
        yn = b.column(name).is_null().to_numpy(zero_copy_only=False)
        bad = xn != yn
        both = ~xn & ~yn
        if f == "count":
            bad |= both & (x != y)
        else:
            xv, yv = x.astype(float), y.astype(float)
            bad |= both & ~np.isclose(xv, yv, rtol=1e-9, atol=1e-9)
        n_bad = int(bad.sum())
        if n_bad:
            i = int(np.flatnonzero(bad)[0])
            problems.append(f"{name}: {n_bad} rows differ (row {i}: {x[i]} vs {y[i]})")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--peers", nargs="+", default=PEERS, choices=PEERS)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child", choices=PEERS)
    ap.add_argument("--size", choices=list(SIZES))
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        args.peer = args.child
        child_main(args)
        return
    info = C.machine_info()
    print(f"# {C.machine_line(info)}; banquet {C.git_commit()}", flush=True)
    results: dict[str, dict[str, dict]] = {}
    for size in args.sizes:
        d = ensure_data(size)
        results[size] = {}
        first: Path | None = None
        for peer in args.peers:
            C.wait_until_quiet(120)
            py = C.BANQUET_PY if peer == "banquet" else PEERS_PY
            out = d / f"out-{peer}.parquet"
            cmd = [str(py), __file__, "--child", peer, "--size", size, "--out", str(out)]
            r = C.run_child(cmd, args.timeout, d / f"{peer}.log", rss_cap_mb=6000)
            res = dict(r.result or {})
            res.update(ok=r.ok, error=r.error, maxrss_mb=r.maxrss_mb)
            if r.ok:
                if first is None:
                    first = out
                    res["equal"] = "reference"
                else:
                    problems = compare(first, out)
                    res["equal"] = "yes" if not problems else "; ".join(problems)
            results[size][peer] = res
            print(f"{size} {peer}: {json.dumps(res)}", flush=True)
    print()
    rows = []
    for size, per in results.items():
        ok = {p: r for p, r in per.items() if r.get("ok")}
        peer_times = [r["wall_s"] for p, r in ok.items() if p != "banquet"]
        fastest = min(peer_times) if peer_times else None
        for p, r in per.items():
            if not r.get("ok"):
                rows.append([size, p, "failed", "", "", r.get("error", "")[:80]])
                continue
            ratio = (
                ""
                if p == "banquet" or "banquet" not in ok
                else (f"{r['wall_s'] / ok['banquet']['wall_s']:.1f}x banquet")
            )
            rows.append(
                [size, p, f"{r['wall_s']:.2f}", f"{r['maxrss_mb']:.0f}", ratio, str(r.get("equal"))]
            )
        if fastest and "banquet" in ok:
            speed = fastest / ok["banquet"]["wall_s"]
            rows.append([size, "target >= 3x", "", "", f"{speed:.2f}x fastest peer", ""])
    print(
        C.markdown_table(
            ["size", "peer", "time s (first run)", "peak MB", "ratio", "equal"], rows, {2, 3}
        )
    )


if __name__ == "__main__":
    main()
