"""Online aggregated read vs a plain read of as many features (#18, Deliver 4).

    source scripts/services.env && .venv/bin/python benches/aggregations_online.py [sqlite|redis|all]

One entity key; the aggregated view has the issue's 4 aggregates (count 1h, sum 24h, mean 7d,
max 24h; slide 1h, so a read merges up to 168 tiles of the 7-day mean), the plain view 4
Float64 features. Both are loaded by materializing 7 days of one event per 10 minutes for
the key. Measures ``get_online_features`` for that key, p50 / p99 of 2,000 calls after 200
warm-up calls, on SQLite and Redis. Waits (up to 2 min) for the machine to be free of
compilers first."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import machine_line, wait_until_quiet

from banquet import FeatureStore

DEFS = """\
from datetime import timedelta as td

from banquet import Entity, FeatureView, Field, FileSource
from banquet.aggregation import Aggregation as A
from banquet.types import Float64

user = Entity(name="user", join_keys=["user_id"])
events = FileSource(name="events", path="data/events.parquet", timestamp_field="ts")
plain_src = FileSource(name="plain", path="data/plain.parquet", timestamp_field="ts")
h = td(hours=1)
agg = FeatureView(
    name="agg", entities=[user], source=events,
    schema=[Field(name="amount", dtype=Float64)],
    aggregations=[
        A("amount", "count", td(hours=1), h),
        A("amount", "sum", td(hours=24), h),
        A("amount", "mean", td(days=7), h),
        A("amount", "max", td(hours=24), h),
    ],
)
plain = FeatureView(
    name="plain", entities=[user], source=plain_src,
    schema=[Field(name=f"f{i}", dtype=Float64) for i in range(4)],
)
"""


def online_yaml(kind: str) -> str:
    if kind == "sqlite":
        return "online_store:\n  type: sqlite\n  path: data/online.db\n"
    u = urlsplit(os.environ["BANQUET_REDIS_URL"])
    conn = f"{u.hostname}:{u.port or 6379},db={(u.path or '/0').lstrip('/') or 0}"
    if u.password:
        conn += f",password={unquote(u.password)}"
    return f"online_store:\n  type: redis\n  connection_string: '{conn}'\n"


def measure(store: FeatureStore, refs: list[str], n: int = 2000) -> tuple[float, float]:
    rows = [{"user_id": 1}]
    for _ in range(200):
        store.get_online_features(refs, rows)
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        store.get_online_features(refs, rows)
        times[i] = time.perf_counter() - t
    return float(np.percentile(times, 50) * 1e6), float(np.percentile(times, 99) * 1e6)


def run(kind: str) -> None:
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        project = "bench_agg_" + uuid.uuid4().hex[:8]
        (root / "feature_store.yaml").write_text(
            f"project: {project}\nregistry: data/registry.db\nprovider: local\n"
            + online_yaml(kind)
            + "offline_store:\n  type: file\n"
        )
        (root / "features.py").write_text(DEFS)
        n = 7 * 24 * 6
        ts = pa.array(
            [now - timedelta(minutes=10 * i) for i in range(n)], pa.timestamp("us", tz="UTC")
        )
        pq.write_table(
            pa.table(
                {
                    "user_id": pa.array([1] * n, pa.int64()),
                    "ts": ts,
                    "amount": pa.array(np.arange(n) % 97 * 0.5),
                }
            ),
            root / "data" / "events.parquet",
        )
        pq.write_table(
            pa.table(
                {
                    "user_id": pa.array([1], pa.int64()),
                    "ts": ts.slice(0, 1),
                    **{f"f{i}": pa.array([float(i)]) for i in range(4)},
                }
            ),
            root / "data" / "plain.parquet",
        )
        store = FeatureStore(repo_path=root)
        try:
            store.apply()
            store.materialize(now - timedelta(days=8), now)
            agg_refs = [f"agg:{f.name}" for f in store.get_feature_view("agg").features]
            plain_refs = [f"plain:f{i}" for i in range(4)]
            got = store.get_online_features(agg_refs, [{"user_id": 1}]).to_dict()
            assert got[agg_refs[0].split(":")[1]][0] == 6, got  # 6 events in the last hour
            p = measure(store, plain_refs)
            a = measure(store, agg_refs)
            print(
                f"| {kind} | {p[0]:.0f} | {p[1]:.0f} | {a[0]:.0f} | {a[1]:.0f} | "
                f"{a[0] / p[0]:.2f}x |"
            )
        finally:
            store.teardown()
            store.online_store.close()


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    wait_until_quiet(120)
    print(machine_line())
    print(
        "| store | plain p50 us | plain p99 us | aggregated p50 us | aggregated p99 us | p50 ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in ("sqlite", "redis") if which == "all" else (which,):
        run(kind)


if __name__ == "__main__":
    main()
