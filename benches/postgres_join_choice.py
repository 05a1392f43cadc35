"""Postgres historical retrieval: where should the point-in-time join run?

Data (loaded once into the local Postgres by benches/_pg_data.py, reused): the 1M entity
rows and one 10M-row feature view (``view_a``, ttl 7 days, 5 features, index on
``(user_id, event_timestamp)``) of benches/historical.py's ``10m`` size.

Variants, each in its own process, each producing one Arrow table of the 5 features for the
1M entity rows in input order:

* ``pull``: banquet as shipped. Entity rows as an Arrow table; the store reads the needed
  columns of rows in ``[min ts - ttl, max ts]`` with ADBC (binary COPY) and joins in Rust.
* ``pull_sql_entity``: the same with ``entity_df`` given as SQL over the entity table.
* ``lateral``: the join in Postgres. Entity rows uploaded by binary COPY (ADBC) into a temp
  table with their row number, then ``LEFT JOIN LATERAL (... ORDER BY event_timestamp DESC,
  created DESC NULLS LAST LIMIT 1)`` (an index probe per entity row), ``ORDER BY`` row number.
* ``distinct_on``: the join in Postgres as one range join + ``DISTINCT ON (row)``.
* ``read_only_csv``: reading the same columns with ``COPY ... TO STDOUT (FORMAT csv)`` parsed
  by pyarrow.csv with an explicit schema, for comparison with ADBC's binary COPY.

Every variant's output is checked against ``pull``'s (same values, same nulls, same order).

    .venv/bin/python benches/postgres_join_choice.py               # all variants
    .venv/bin/python benches/postgres_join_choice.py --only pull,lateral
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import _pg_data as D  # noqa: E402

ENTITY_TABLE = "entity_1m"
VIEW_TABLE = "view_a_10m"
FEATURES = ["a_amount", "a_count", "a_score", "a_country", "a_max"]
TTL_DAYS = 7
VARIANTS = ["pull", "pull_sql_entity", "lateral", "distinct_on", "read_only_csv"]
TIMEOUT_S = 900


def ensure_tables() -> None:
    src = C.DATA / "10m"
    if not (src / "view_a.parquet").exists():
        sys.exit("benches/data/10m is missing: run `benches/historical.py --sizes 10m` first")
    D.load_parquet(src / "entity.parquet", ENTITY_TABLE)
    D.load_parquet(src / "view_a.parquet", VIEW_TABLE)


# --- variants (run in the child) ---------------------------------------------------------------


def _banquet_store():  # type: ignore[no-untyped-def]
    from psycopg.conninfo import conninfo_to_dict

    from banquet import Entity, FeatureStore, FeatureView, Field, PostgreSQLSource, RepoConfig
    from banquet.types import Float32, Float64, Int64, String

    d = conninfo_to_dict(D.dsn())
    root = Path(tempfile.mkdtemp())
    cfg = RepoConfig.from_dict(
        {
            "project": "joinchoice",
            "registry": str(root / "registry.db"),
            "online_store": {"type": "sqlite", "path": str(root / "online.db")},
            "offline_store": {
                "type": "postgres",
                "host": d["host"],
                "port": int(d["port"]),
                "database": d["dbname"],
                "user": d["user"],
                "password": d.get("password", ""),
                "db_schema": D.SCHEMA,
            },
        },
        repo_path=root,
    )
    store = FeatureStore(config=cfg)
    from datetime import timedelta

    user = Entity(name="user", join_keys=["user_id"])
    types = {"a_amount": Float64, "a_count": Int64, "a_score": Float32, "a_country": String}
    view = FeatureView(
        name="view_a",
        entities=[user],
        ttl=timedelta(days=TTL_DAYS),
        schema=[Field(name=f, dtype=types.get(f, Float64)) for f in FEATURES],
        source=PostgreSQLSource(
            name="view_a",
            table=VIEW_TABLE,
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        ),
    )
    store.apply([user, view])
    return store


def run_variant(name: str, out: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    refs = [f"view_a:{f}" for f in FEATURES]
    if name in ("pull", "pull_sql_entity"):
        store = _banquet_store()
        if name == "pull":
            entity = pq.read_table(C.DATA / "10m" / "entity.parquet")
            t = time.perf_counter()
            result = store.get_historical_features(entity, refs).to_arrow()
        else:
            t = time.perf_counter()
            sql = f"SELECT user_id, event_timestamp FROM {D.SCHEMA}.{ENTITY_TABLE}"
            result = store.get_historical_features(sql, refs).to_arrow()
        seconds = time.perf_counter() - t
        table = result.select(FEATURES)
    elif name in ("lateral", "distinct_on"):
        import adbc_driver_postgresql.dbapi as adbc

        entity = pq.read_table(C.DATA / "10m" / "entity.parquet")
        t = time.perf_counter()
        with adbc.connect(D.dsn(), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SET TimeZone = UTC")
            rows = entity.append_column("_row", pa.array(range(entity.num_rows), pa.int64()))
            cur.adbc_ingest("_e", rows, mode="create", temporary=True)
            cur.execute("ANALYZE _e")
            cols = ", ".join(f"f.{c}" for c in FEATURES)
            src = f"{D.SCHEMA}.{VIEW_TABLE}"
            ttl = f"INTERVAL '{TTL_DAYS} days'"
            if name == "lateral":
                sql = f"""
                    SELECT {cols} FROM _e e LEFT JOIN LATERAL (
                        SELECT {", ".join(FEATURES)} FROM {src} s
                        WHERE s.user_id = e.user_id
                          AND s.event_timestamp <= e.event_timestamp
                          AND s.event_timestamp >= e.event_timestamp - {ttl}
                        ORDER BY s.event_timestamp DESC, s.created DESC NULLS LAST
                        LIMIT 1
                    ) f ON true
                    ORDER BY e._row"""
            else:
                sql = f"""
                    SELECT {cols} FROM (
                        SELECT DISTINCT ON (e._row) e._row, {", ".join("s." + c for c in FEATURES)}
                        FROM _e e LEFT JOIN {src} s
                          ON s.user_id = e.user_id
                         AND s.event_timestamp <= e.event_timestamp
                         AND s.event_timestamp >= e.event_timestamp - {ttl}
                        ORDER BY e._row, s.event_timestamp DESC, s.created DESC NULLS LAST
                    ) f ORDER BY f._row"""
            cur.execute(sql)
            table = cur.fetch_arrow_table()
        seconds = time.perf_counter() - t
    elif name == "read_only_csv":
        import io

        import psycopg
        import pyarrow.csv as pcsv

        cols = ["user_id", "event_timestamp", "created", *FEATURES]
        t = time.perf_counter()
        buf = io.BytesIO()
        with psycopg.connect(D.dsn(), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("SET TimeZone = UTC")
            sel = ", ".join(
                f"(extract(epoch from {c}) * 1000000)::bigint AS {c}"
                if c in ("event_timestamp", "created")
                else c
                for c in cols
            )
            with cur.copy(
                f"COPY (SELECT {sel} FROM {D.SCHEMA}.{VIEW_TABLE}) TO STDOUT (FORMAT csv)"
            ) as copy:
                for chunk in copy:
                    buf.write(chunk)
        types = {
            "user_id": pa.int64(),
            "event_timestamp": pa.int64(),
            "created": pa.int64(),
            "a_amount": pa.float64(),
            "a_count": pa.int64(),
            "a_score": pa.float32(),
            "a_country": pa.string(),
            "a_max": pa.float64(),
        }
        buf.seek(0)
        table = pcsv.read_csv(
            buf,
            read_options=pcsv.ReadOptions(column_names=cols),
            convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        seconds = time.perf_counter() - t
        return {"seconds": seconds, "rows": table.num_rows, "rss_mb": C.rss_mb()}
    else:
        raise SystemExit(f"unknown variant {name}")
    rss = C.rss_mb()
    pq.write_table(table, out)
    return {"seconds": seconds, "rows": table.num_rows, "rss_mb": rss}


def read_only_adbc() -> dict:
    """The read step of ``pull`` alone: the needed columns of all 10M rows through ADBC."""
    import adbc_driver_postgresql.dbapi as adbc

    cols = ["user_id", "event_timestamp", "created", *FEATURES]
    t = time.perf_counter()
    with adbc.connect(D.dsn(), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {', '.join(cols)} FROM {D.SCHEMA}.{VIEW_TABLE}")
        table = cur.fetch_arrow_table()
    return {"seconds": time.perf_counter() - t, "rows": table.num_rows, "rss_mb": C.rss_mb()}


# --- parent ------------------------------------------------------------------------------------


def checksum(path: Path) -> str:
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    h = hashlib.sha256()
    for c in FEATURES:
        h.update(json.dumps(t.column(c).to_pylist()[:: max(1, t.num_rows // 50_000)]).encode())
        h.update(str(t.column(c).null_count).encode())
    return h.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(VARIANTS + ["read_only_adbc"]))
    ap.add_argument("--child", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.child:
        if args.child == "read_only_adbc":
            C.report(read_only_adbc())
        else:
            C.report(run_variant(args.child, Path(args.out)))
        return

    ensure_tables()
    print(C.machine_line())
    out_dir = C.DATA / "pg_join_choice"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for name in args.only.split(","):
        C.wait_until_quiet(120)
        out = out_dir / f"{name}.parquet"
        run = C.run_child(
            [str(C.BANQUET_PY), __file__, "--child", name, "--out", str(out)],
            TIMEOUT_S,
            log=out_dir / f"{name}.log",
        )
        if not run.ok:
            print(f"{name:16s} FAILED: {run.error}", flush=True)
            results[name] = {"error": run.error}
            continue
        r = run.result or {}
        same = ""
        if out.exists() and name not in ("read_only_csv", "read_only_adbc"):
            same = checksum(out)
        r.update(checksum=same, client_peak_mb=round(run.maxrss_mb))
        results[name] = r
        print(
            f"{name:16s} {r['seconds']:8.2f} s  rows {r['rows']:>9,}  client peak "
            f"{run.maxrss_mb:6.0f} MB  {same}",
            flush=True,
        )
    sums = {r["checksum"] for r in results.values() if r.get("checksum")}
    print("outputs agree" if len(sums) <= 1 else f"OUTPUTS DIFFER: {sums}")
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
