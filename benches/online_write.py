"""Time a 100k-row ``OnlineStore.write`` on every store (issue #13, "One online write").

    source scripts/services.env && .venv/bin/python benches/online_write.py [ROWS]

Per store: a first write (nothing stored), a newer write over it (Redis: the script), a
write with 1% repeated keys (Postgres: one row per key first), and ``overwrite``. Best of 3,
each in a fresh project. Runs against the API of this checkout (``write(batch)``) or the
older one (``write_arrays``), so the same script times both sides of the change."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa

from banquet import Entity, FeatureView, Field, FileSource, RepoConfig
from banquet.config import PostgresOnlineConfig, RedisOnlineConfig, SqliteOnlineConfig
from banquet.online import open_online_store
from banquet.types import Int64

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def configs(tmp: str) -> dict[str, Any]:
    e = os.environ
    u = urlsplit(e["BANQUET_REDIS_URL"])
    pw = unquote(u.password or "")
    pg = urlsplit(e["BANQUET_PG_DSN"])
    return {
        "sqlite": SqliteOnlineConfig(path=f"{tmp}/online.db"),
        "redis": RedisOnlineConfig(connection_string=f"{u.hostname}:{u.port},password={pw}"),
        "redis_cluster": RedisOnlineConfig(
            connection_string=e["BANQUET_REDIS_CLUSTER_NODES"] + f",password={pw}",
            redis_type="redis_cluster",
        ),
        "postgres": PostgresOnlineConfig(
            host=pg.hostname or "localhost",
            port=pg.port or 5432,
            database=pg.path.lstrip("/"),
            user=unquote(pg.username or ""),
            password=unquote(pg.password or ""),
            db_schema="bench_write_" + uuid.uuid4().hex[:8],
        ),
    }


def rows(n: int, event: int, dup: bool = False) -> tuple[pa.Array, ...]:
    ids = np.arange(n)
    if dup:
        ids[-n // 100 :] = ids[: n // 100]
    keys = pa.array([int(i).to_bytes(8, "big") for i in ids], pa.binary())
    blobs = pa.array([b"x" * 60] * n, pa.binary())
    ev = pa.array(np.full(n, event, dtype=np.int64))
    return keys, ev, pa.nulls(n, pa.int64()), blobs


def write(store: Any, project: str, arrays: tuple[pa.Array, ...], overwrite: bool) -> None:
    if hasattr(store, "write_arrays"):  # the older API
        store.write_arrays(project, "v", *arrays, overwrite=overwrite)
        return
    from banquet.online.base import rows_batch

    store.write(project, "v", rows_batch(*arrays), overwrite=overwrite)


def main() -> None:
    view = FeatureView(
        name="v",
        entities=[Entity(name="e", join_keys=["e"])],
        schema=[Field(name="f", dtype=Int64)],
        source=FileSource(path="x.parquet", timestamp_field="ts"),
    )
    first, newer, dup = rows(ROWS, 10), rows(ROWS, 20), rows(ROWS, 30, dup=True)
    with tempfile.TemporaryDirectory() as tmp:
        for kind, cfg in configs(tmp).items():
            best: dict[str, float] = {}
            for _ in range(3):
                project = "bw" + uuid.uuid4().hex[:8]
                store = open_online_store(RepoConfig(project=project, online_store=cfg))
                store.create_view(project, view)
                try:
                    for name, arrays, over in (
                        ("first", first, False),
                        ("newer", newer, False),
                        ("dup keys", dup, False),
                        ("overwrite", first, True),
                    ):
                        t = time.perf_counter()
                        write(store, project, arrays, over)
                        dt = time.perf_counter() - t
                        best[name] = min(best.get(name, dt), dt)
                finally:
                    store.teardown(project)
                    store.close()
            print(
                f"{kind:14s} " + "  ".join(f"{k} {v * 1000:7.1f} ms" for k, v in best.items()),
                flush=True,
            )


if __name__ == "__main__":
    main()
