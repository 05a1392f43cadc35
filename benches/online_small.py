"""Latency of the request-path calls: a small Postgres push, a Redis Cluster read (#13).

    source scripts/services.env && .venv/bin/python benches/online_small.py [pg|redis|all]

pg: ``OnlineStore.write`` of 1, 10, 100 and 999 rows (a push; under COPY_ROWS) over stored
keys with newer events, p50 / p90 of 300 writes (100 for 999 rows).
redis: ``OnlineStore.read`` of 1, 100 and 1000 keys of one view on the Redis Cluster, p50 /
p90 of 2000 reads (500 for 1000 keys; after 200 warm-up reads).
Waits (up to 2 min) for the machine to be free of compilers first, and prints the load."""

from __future__ import annotations

import os
import sys
import time
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
from _common import wait_until_quiet

from banquet import Entity, FeatureView, Field, FileSource, RepoConfig
from banquet.config import PostgresOnlineConfig, RedisOnlineConfig
from banquet.online import open_online_store
from banquet.online.base import rows_batch
from banquet.types import Int64

VIEW = FeatureView(
    name="v",
    entities=[Entity(name="e", join_keys=["e"])],
    schema=[Field(name="f", dtype=Int64)],
    source=FileSource(path="x.parquet", timestamp_field="ts"),
)


def configs() -> dict[str, Any]:
    e = os.environ
    pw = unquote(urlsplit(e["BANQUET_REDIS_URL"]).password or "")
    pg = urlsplit(e["BANQUET_PG_DSN"])
    return {
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
            db_schema="bench_small_" + uuid.uuid4().hex[:8],
        ),
    }


def keys(n: int) -> pa.Array:
    return pa.array([int(i).to_bytes(8, "big") for i in range(n)], pa.binary())


def batch(n: int, event: int) -> pa.RecordBatch:
    return rows_batch(
        keys(n),
        pa.array(np.full(n, event, dtype=np.int64)),
        pa.nulls(n, pa.int64()),
        pa.array([b"x" * 60] * n, pa.binary()),
    )


def pcts(times: list[float]) -> str:
    a = np.array(times) * 1e6
    return f"p50 {np.percentile(a, 50):8.1f} us  p90 {np.percentile(a, 90):8.1f} us"


def open_store(cfg: Any) -> tuple[Any, str]:
    project = "bs" + uuid.uuid4().hex[:8]
    store = open_online_store(RepoConfig(project=project, online_store=cfg))
    store.create_view(project, VIEW)
    return store, project


def bench_pg(cfg: Any) -> None:
    store, project = open_store(cfg)
    try:
        store.write(project, "v", batch(1000, 1))  # every key stored (by COPY)
        event = 2
        for n in (1, 10, 100, 999):
            reps = 100 if n > 100 else 300
            batches = [batch(n, event + i) for i in range(reps + 20)]
            event += reps + 20
            times = []
            for i, b in enumerate(batches):
                t = time.perf_counter()
                store.write(project, "v", b)
                if i >= 20:  # warm-up: statement caches, the pool's connections
                    times.append(time.perf_counter() - t)
            print(f"postgres write {n:4d} rows  {pcts(times)}", flush=True)
    finally:
        store.teardown(project)
        store.close()


def bench_redis(cfg: Any) -> None:
    store, project = open_store(cfg)
    try:
        store.write(project, "v", batch(2000, 1))
        all_keys = keys(2000).to_pylist()
        for n in (1, 100, 1000):
            reps = 700 if n > 100 else 2200
            requests = [[("v", all_keys[(i * 7) % 900 : (i * 7) % 900 + n])] for i in range(reps)]
            times = []
            for i, req in enumerate(requests):
                t = time.perf_counter()
                out = store.read(project, req)
                if i >= 200:
                    times.append(time.perf_counter() - t)
                assert out[0][0] is not None
            print(f"redis_cluster read {n:4d} keys  {pcts(times)}", flush=True)
    finally:
        store.teardown(project)
        store.close()


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    quiet = wait_until_quiet(120)
    print(f"load average {os.getloadavg()[0]:.2f}, quiet: {quiet}", flush=True)
    cfgs = configs()
    if what in ("pg", "all"):
        bench_pg(cfgs["postgres"])
    if what in ("redis", "all"):
        bench_redis(cfgs["redis_cluster"])


if __name__ == "__main__":
    main()
