"""Benchmark data in the local Postgres: the Parquet files of benches/historical.py loaded
once into tables of schema ``bench_pg`` (binary COPY through ADBC), reused across runs.

A table is reloaded only when its row count differs from the Parquet file's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SCHEMA = "bench_pg"
DSN_DEFAULT = "postgresql://banquet:banquet@127.0.0.1:55432/banquet"


def dsn() -> str:
    return os.environ.get("BANQUET_PG_DSN", DSN_DEFAULT)


def row_count(table: str) -> int | None:
    import psycopg

    with psycopg.connect(dsn(), autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{table}",)).fetchone()
        if exists is None or exists[0] is None:
            return None
        row = conn.execute(f'SELECT count(*) FROM {SCHEMA}."{table}"').fetchone()
        return int(row[0]) if row else None


def load_parquet(path: Path, table: str, *, key_type: str = "bigint") -> None:
    """Load ``path`` into ``bench_pg.<table>`` unless it already holds as many rows; the
    ``user_id`` column gets ``key_type``; an index on (user_id, event_timestamp) follows."""
    import adbc_driver_postgresql.dbapi as adbc
    import psycopg
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n = pf.metadata.num_rows
    if row_count(table) == n:
        return
    t = time.perf_counter()
    with psycopg.connect(dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f'DROP TABLE IF EXISTS {SCHEMA}."{table}"')
    with adbc.connect(dsn()) as conn, conn.cursor() as cur:
        for batch in pf.iter_batches(batch_size=500_000):
            cur.adbc_ingest(table, batch, mode="create_append", db_schema_name=SCHEMA)
        conn.commit()
    with psycopg.connect(dsn(), autocommit=True) as conn:
        q = f'{SCHEMA}."{table}"'
        if key_type != "bigint":
            conn.execute(f"ALTER TABLE {q} ALTER COLUMN user_id TYPE {key_type}")
        if "event_timestamp" in pf.schema_arrow.names and table != "entity":
            conn.execute(f"CREATE INDEX ON {q} (user_id, event_timestamp)")
        conn.execute(f"ANALYZE {q}")
    print(
        f"  loaded {n:,} rows into {SCHEMA}.{table} in {time.perf_counter() - t:.1f}s", flush=True
    )
