"""Historical retrieval from Postgres: banquet vs Feast 0.67's postgres offline store.

Same server (the local Postgres of `make services`), same tables, same request: the 1M
entity rows of benches/historical.py's ``1m`` size against its two feature views (1M rows
each, ttl 7 and 30 days, 5 features each, ``created`` breaks ties), loaded once into schema
``bench_pg`` by benches/_pg_data.py. Both peers get the entity rows as a pandas DataFrame
(banquet also as Arrow; the conversion is not timed for either) and must return one table
with the 10 features; each run is its own process, timed from the call to the finished
Arrow table. Feast gets ``--timeout`` seconds (default 600); when it does not finish, the
next smaller entity size is tried (1M -> 300k -> 100k rows, the first rows of the same
entity set), and banquet runs every size Feast was tried at.

Outputs are compared: rows sorted by (user_id, event_timestamp), features equal (floats to
1e-6), nulls in the same places.

    benches/.venv-peers/bin/pip install -r benches/requirements.txt
    .venv/bin/python benches/historical_postgres.py                # 1M, stepping down
    .venv/bin/python benches/historical_postgres.py --sizes 100000 # one size
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _pg_data as D  # noqa: E402

VIEWS = [
    ("user_txn_7d", "view_a_1m", 7, ["a_amount", "a_count", "a_score", "a_country", "a_max"]),
    (
        "user_profile_30d",
        "view_b_1m",
        30,
        ["b_balance", "b_logins", "b_risk", "b_age_days", "b_ltv"],
    ),
]
TYPES = {
    "a_amount": "Float64",
    "a_count": "Int64",
    "a_score": "Float32",
    "a_country": "String",
    "a_max": "Float64",
    "b_balance": "Float64",
    "b_logins": "Int64",
    "b_risk": "Float32",
    "b_age_days": "Int64",
    "b_ltv": "Float64",
}
REFS = [f"{v}:{f}" for v, _, _, feats in VIEWS for f in feats]
FEATURES = [f for _, _, _, feats in VIEWS for f in feats]
ENTITY_FILE = C.DATA / "1m" / "entity.parquet"
ENTITY_TABLE = "entity_for_1m"  # the same rows in Postgres, for --entity sql
STEPS = [1_000_000, 300_000, 100_000]
OUT = C.DATA / "pg_historical"


def ensure_tables() -> None:
    src = C.DATA / "1m"
    if not (src / "view_a.parquet").exists():
        sys.exit("benches/data/1m is missing: run `benches/historical.py --sizes 1m` first")
    D.load_parquet(src / "view_a.parquet", "view_a_1m")
    D.load_parquet(src / "view_b.parquet", "view_b_1m")
    D.load_parquet(ENTITY_FILE, ENTITY_TABLE)


def definitions(peer: str) -> str:
    """The same feature definitions for both peers (only the imports differ)."""
    if peer == "banquet":
        head = "from banquet import Entity, FeatureView, Field, PostgreSQLSource\n"
        head += "from banquet.types import Float32, Float64, Int64, String\n"
        entity = 'user = Entity(name="user", join_keys=["user_id"])\n'
    else:
        head = "from feast import Entity, FeatureView, Field, ValueType\n"
        head += "from feast.types import Float32, Float64, Int64, String\n"
        head += (
            "from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source "
            "import PostgreSQLSource\n"
        )
        entity = 'user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)\n'
    body = "from datetime import timedelta\n" + head + entity
    names = []
    for view, table, ttl, feats in VIEWS:
        schema = ", ".join(f'Field(name="{f}", dtype={TYPES[f]})' for f in feats)
        body += (
            f"{view} = FeatureView(name={view!r}, entities=[user], ttl=timedelta(days={ttl}),\n"
            f"    schema=[{schema}],\n"
            f"    source=PostgreSQLSource(name={table!r}, query='SELECT * FROM {D.SCHEMA}.{table}',\n"
            "        timestamp_field='event_timestamp', created_timestamp_column='created'))\n"
        )
        names.append(view)
    return body + f"OBJECTS = [user, {', '.join(names)}]\n"


def repo_yaml(peer: str, root: Path) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(D.dsn())
    return (
        f"project: pgbench_{peer}\n"
        "provider: local\n"
        f"registry: {root}/registry.db\n"
        "online_store:\n"
        "  type: sqlite\n"
        f"  path: {root}/online.db\n"
        "offline_store:\n"
        "  type: postgres\n"
        f"  host: {u.hostname}\n"
        f"  port: {u.port}\n"
        f"  database: {u.path.lstrip('/')}\n"
        f"  user: {u.username}\n"
        f"  password: {u.password}\n"
        f"  db_schema: {D.SCHEMA}\n"
        "  sslmode: disable\n"
        "entity_key_serialization_version: 3\n"
    )


def entity_sql(n: int) -> str:
    """The first ``n`` entity rows as a query (the table was loaded in file order)."""
    return f"SELECT user_id, event_timestamp FROM {D.SCHEMA}.{ENTITY_TABLE} LIMIT {n}"


def child(peer: str, n: int, out: Path, entity_kind: str) -> dict:
    import importlib.util

    import pyarrow.parquet as pq

    root = Path(tempfile.mkdtemp(prefix=f"pgbench_{peer}_"))
    (root / "feature_store.yaml").write_text(repo_yaml(peer, root))
    (root / "definitions.py").write_text(definitions(peer))
    spec = importlib.util.spec_from_file_location("bench_defs", root / "definitions.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    entity = pq.read_table(ENTITY_FILE).slice(0, n)
    if peer == "banquet":
        from banquet import FeatureStore

        store = FeatureStore(repo_path=root)
        store.apply(mod.OBJECTS)
        t = time.perf_counter()
        entity_df = entity if entity_kind == "frame" else entity_sql(n)
        table = store.get_historical_features(entity_df, REFS).to_arrow()
    else:
        from feast import FeatureStore as FeastStore

        store = FeastStore(repo_path=str(root))
        store.apply(mod.OBJECTS)
        pdf = entity.to_pandas() if entity_kind == "frame" else entity_sql(n)
        t = time.perf_counter()
        table = store.get_historical_features(entity_df=pdf, features=REFS).to_arrow()
    seconds = time.perf_counter() - t
    rss = C.rss_mb()
    pq.write_table(table.select(["user_id", "event_timestamp", *FEATURES]), out)
    return {"seconds": seconds, "rows": table.num_rows, "rss_mb": rss}


def compare(a: Path, b: Path) -> str:
    """'' when both outputs hold the same rows (order aside), else what differs."""
    import numpy as np
    import pyarrow.parquet as pq

    x, y = (
        pq.read_table(p).to_pandas().sort_values(["user_id", "event_timestamp", *FEATURES])
        for p in (a, b)
    )
    if len(x) != len(y):
        return f"row counts {len(x)} vs {len(y)}"
    x, y = x.reset_index(drop=True), y.reset_index(drop=True)
    for c in FEATURES:
        xa, ya = x[c].to_numpy(), y[c].to_numpy()
        xn, yn = x[c].isna().to_numpy(), y[c].isna().to_numpy()
        if not (xn == yn).all():
            return f"{c}: nulls differ in {(xn != yn).sum()} rows"
        if x[c].dtype.kind in "fc" or y[c].dtype.kind in "fc":
            ok = np.allclose(xa[~xn].astype(float), ya[~yn].astype(float), rtol=1e-6)
        else:
            ok = bool((xa[~xn] == ya[~yn]).all())
        if not ok:
            return f"{c}: values differ"
    return ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=",".join(map(str, STEPS)))
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--peers", default="banquet,feast")
    ap.add_argument(
        "--entity",
        choices=["frame", "sql"],
        default="frame",
        help="entity_df as a DataFrame or SQL",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per peer and size (best kept)")
    ap.add_argument("--child", default=None)
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.child:
        C.report(child(args.child, args.n, Path(args.out), args.entity))
        return

    ensure_tables()
    info = C.machine_info()
    print(C.machine_line(info), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in map(int, args.sizes.split(",")):
        runs = {}
        peers = args.peers.split(",")
        for peer in peers:
            best: dict | None = None
            for _ in range(args.repeat):
                C.wait_until_quiet(120)
                py = C.BANQUET_PY if peer == "banquet" else C.PEERS_PY
                out = OUT / f"{peer}_{n}_{args.entity}.parquet"
                out.unlink(missing_ok=True)
                run = C.run_child(
                    [str(py), __file__, "--child", peer, "--n", str(n), "--out", str(out)]
                    + ["--entity", args.entity],
                    args.timeout,
                    log=OUT / f"{peer}_{n}_{args.entity}.log",
                )
                r = dict(run.result or {}, ok=run.ok, error=run.error, peak_mb=round(run.maxrss_mb))
                shown = f"{r['seconds']:8.1f} s" if run.ok else f"FAILED ({run.error})"
                print(
                    f"{n:>9,} entity rows  {peer:8s} {shown}  peak {run.maxrss_mb:6.0f} MB",
                    flush=True,
                )
                best = (
                    r
                    if best is None or (r["ok"] and r["seconds"] < best.get("seconds", 1e9))
                    else best
                )
                if not run.ok:
                    break
            runs[peer] = best or {}
        same = ""
        if all(runs.get(p, {}).get("ok") for p in ("banquet", "feast")):
            pair = [OUT / f"{p}_{n}_{args.entity}.parquet" for p in ("banquet", "feast")]
            same = compare(*pair) or "same"
            print(f"  outputs: {same}", flush=True)
        rows.append({"entity_rows": n, "runs": runs, "outputs": same})
        if runs.get("feast", {}).get("ok", True):
            break  # the largest size Feast finishes: done
    (OUT / f"results_{'_'.join(args.peers.split(','))}_{args.entity}.json").write_text(
        json.dumps({"machine": info, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
