"""Online serving on SQLite, banquet against Feast 0.67: materialization throughput and
``get_online_features`` latency, on the same generated data.

Data (numpy-seeded, cached in ``benches/data/online-<keys>/``): two feature views of 10
features each (float64 / int64 / float32 and one string, ~1% stored nulls in two of them),
one int64 entity key ``user_id``; every one of N keys has R rows per view in the source
(distinct event times, a ``created`` column), so materializing writes N keys per view out of
N x R source rows. Both systems use the local provider, the ``sqlite`` online store and their
``file`` offline store (Feast's is Dask), the same feature definitions and the same window.

Per system, each step in its own subprocess, in this order:

1. ``setup``: write the repo and apply it (a fresh online store); not timed.
2. ``materialize``: ``store.materialize(start, end, feature_views=[view])`` per view, timed
   with ``time.perf_counter`` around each call (modules the call imports lazily are imported
   first; the child lists any still imported during the timing). Throughput = distinct keys
   written per second (the target's "rows/s"), and source rows read per second.
3. ``serve``: in-process ``get_online_features(...).to_dict()`` latency after a warm-up:
   1 entity x 2 views x 10 features, then 100 entities x 20 features, random existing keys
   (the same seeded sequence for both systems), ``time.perf_counter_ns`` around each call.
   The child then reads a sample of keys (and a few absent ones) for the check below.

The parent checks both systems' sample against the source data (the latest row per key) and
against each other (float32 with a relative tolerance of 1e-6), counts the keys in each
online store, prints the table and the targets, and with ``--profile`` splits banquet's time:
per call (façade, serving's Python, the one Rust call; timers around banquet's own functions,
exclusive of nested ones, plus the SQLite lookups alone and a cProfile) and per
materialization stage (offline read, latest per key, sort, encode, SQLite upsert, registry).
Runs during which a
compiler or another benchmark was seen are flagged and, given a quiet one, left out of the table.

    .venv/bin/python benches/online.py --quick             # 10k keys smoke run
    .venv/bin/python benches/online.py                      # 100k keys x 5 rows per view
    .venv/bin/python benches/online.py --profile            # + where banquet's time goes
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

import _common as C  # noqa: E402

GEN_VERSION = 1  # bump when the generated data changes
SEED = 20240917
US = 1_000_000
T0_US = 1_735_689_600 * US  # 2025-01-01T00:00:00Z
SPAN_DAYS = 90
PROJECT = "bench_online"
TTL_DAYS = 3650  # long enough that nothing is expired at read time in either system

# Materialization window: the whole span, with a day of margin each side (both systems).
WINDOW_START = datetime(2024, 12, 31, tzinfo=timezone.utc)
WINDOW_END = datetime(2025, 4, 2, tzinfo=timezone.utc)

# (view, file, [(feature, type)]); nulls in the features marked True
VIEWS = [
    (
        "user_txn",
        "view_a.parquet",
        [
            ("a_amount_sum", "float64", True),
            ("a_amount_avg", "float64", False),
            ("a_amount_max", "float64", False),
            ("a_txn_count", "int64", False),
            ("a_refunds", "int64", False),
            ("a_days_active", "int64", False),
            ("a_score", "float32", False),
            ("a_risk", "float32", False),
            ("a_churn_p", "float32", False),
            ("a_country", "string", True),
        ],
    ),
    (
        "user_profile",
        "view_b.parquet",
        [
            ("b_balance", "float64", True),
            ("b_ltv", "float64", False),
            ("b_basket", "float64", False),
            ("b_logins", "int64", False),
            ("b_sessions", "int64", False),
            ("b_age_days", "int64", False),
            ("b_ctr", "float32", False),
            ("b_cvr", "float32", False),
            ("b_fraud_p", "float32", False),
            ("b_segment", "string", True),
        ],
    ),
]
FEATURE_REFS = [f"{v}:{f}" for v, _, feats in VIEWS for f, _, _ in feats]
FEATURES = [f for _, _, feats in VIEWS for f, _, _ in feats]
FTYPE = {f: t for _, _, feats in VIEWS for f, t, _ in feats}
PEERS = ["banquet", "feast"]
STRINGS = [
    "US",
    "DE",
    "FR",
    "GB",
    "JP",
    "BR",
    "IN",
    "CA",
    "ES",
    "IT",
    "NL",
    "SE",
    "PL",
    "MX",
    "gold",
    "silver",
    "bronze",
    "new",
    "dormant",
    "vip",
]

TARGETS = {
    "p50_1": 60.0,  # us
    "p99_1": 250.0,  # us
    "p50_100": 1000.0,  # us
    "mat_keys_per_s": 300_000.0,
    "speedup_1": 7.0,
    "speedup_100": 14.0,
    "speedup_mat": 50.0,
}


# --- data ------------------------------------------------------------------------------------


def data_dir(keys: int, rows_per_key: int) -> Path:
    label = f"{keys // 1000}k" if keys % 1000 == 0 else str(keys)
    return C.DATA / f"online-{label}x{rows_per_key}"


def ensure_data(keys: int, rows_per_key: int) -> Path:
    d = data_dir(keys, rows_per_key)
    want = {"gen": GEN_VERSION, "seed": SEED, "keys": keys, "rows_per_key": rows_per_key}
    manifest = d / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return d
    print(f"  generating {keys:,} keys x {rows_per_key} rows x 2 views into {d} ...", flush=True)
    t = time.perf_counter()
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    _generate(d, keys, rows_per_key)
    manifest.write_text(json.dumps(want))
    print(f"  generated in {time.perf_counter() - t:.1f}s", flush=True)
    return d


def _generate(d: Path, n_keys: int, rpk: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([SEED, n_keys, rpk])
    # Distinct, spread-out int64 keys (not 0..N-1).
    cand = np.unique(rng.integers(1, 1 << 40, n_keys * 2, dtype=np.int64))
    keys = rng.permutation(cand)[:n_keys]
    np.save(d / "keys.npy", keys)
    ts_type = pa.timestamp("us", tz="UTC")
    span_us = SPAN_DAYS * 86_400 * US
    n = n_keys * rpk
    for _, fname, feats in VIEWS:
        uid = np.repeat(keys, rpk)
        ts = T0_US + rng.integers(0, span_us, n, dtype=np.int64)
        # distinct event times per key, so the latest row is unambiguous in both systems
        while True:
            o = np.lexsort((ts, uid))
            dup = (uid[o][1:] == uid[o][:-1]) & (ts[o][1:] == ts[o][:-1])
            if not dup.any():
                break
            ts[o[1:][dup]] += 1
        created = ts + rng.integers(1, 3_600 * US, n, dtype=np.int64)
        perm = rng.permutation(n)  # rows in no particular order
        uid, ts, created = uid[perm], ts[perm], created[perm]
        cols = {
            "user_id": pa.array(uid),
            "event_timestamp": pa.array(ts, ts_type),
            "created": pa.array(created, ts_type),
        }
        for name, typ, nulls in feats:
            mask = rng.random(n) < 0.01 if nulls else None
            if typ == "float64":
                vals = rng.normal(100.0, 30.0, n)
                cols[name] = pa.array(vals, pa.float64(), mask=mask)
            elif typ == "float32":
                cols[name] = pa.array(rng.random(n, dtype=np.float32), pa.float32(), mask=mask)
            elif typ == "int64":
                cols[name] = pa.array(
                    rng.integers(0, 1_000_000, n, dtype=np.int64), pa.int64(), mask=mask
                )
            else:
                idx = rng.integers(0, len(STRINGS), n, dtype=np.int32)
                cols[name] = pa.array(np.array(STRINGS, dtype=object)[idx], pa.string(), mask=mask)
        pq.write_table(pa.table(cols), d / fname)


def expected_rows(d: Path, sample: list[int]) -> dict[int, dict]:
    """The latest row (max event time, then created) per sampled key, straight from Parquet."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: dict[int, dict] = {k: {} for k in sample}
    want = np.array(sample, dtype=np.int64)
    for _, fname, feats in VIEWS:
        t = pq.read_table(d / fname)
        uid = t["user_id"].to_numpy()
        sel = np.nonzero(np.isin(uid, want))[0]
        sub = t.take(pa.array(sel))
        su = sub["user_id"].to_numpy()
        st = sub["event_timestamp"].cast(pa.int64()).to_numpy()
        sc = sub["created"].cast(pa.int64()).to_numpy()
        o = np.lexsort((sc, st, su))
        last = o[np.r_[su[o][1:] != su[o][:-1], True]]
        rows = sub.take(pa.array(last)).to_pylist()
        for r in rows:
            out[r["user_id"]].update({f: r[f] for f, _, _ in feats})
    return out


# --- feature repos ------------------------------------------------------------------------------


def repo_dir(d: Path, peer: str) -> Path:
    return d / f"{peer}_repo"


def _defs(kind: str, d: Path) -> str:
    """The same definitions for banquet and Feast (the APIs have the same shape)."""
    types_mod = "banquet.types" if kind == "banquet" else "feast.types"
    lines = [
        "from datetime import timedelta",
        "",
        f"from {kind} import Entity, FeatureView, Field, FileSource",
        f"from {types_mod} import Float32, Float64, Int64, String",
    ]
    if kind == "feast":
        lines += [
            "from feast import ValueType",
            "",
            'user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)',
        ]
    else:
        lines += ["", 'user = Entity(name="user", join_keys=["user_id"])']
    dtype = {"float64": "Float64", "float32": "Float32", "int64": "Int64", "string": "String"}
    names = []
    for i, (view, fname, feats) in enumerate(VIEWS):
        schema = ",\n        ".join(f'Field(name="{f}", dtype={dtype[t]})' for f, t, _ in feats)
        lines += [
            "",
            f"src_{i} = FileSource(",
            f'    name="{view}_src", path="{d / fname}",',
            '    timestamp_field="event_timestamp", created_timestamp_column="created",',
            ")",
            f"view_{i} = FeatureView(",
            f'    name="{view}", entities=[user], ttl=timedelta(days={TTL_DAYS}),',
            f"    schema=[\n        {schema},\n    ],",
            f"    source=src_{i}, online=True,",
            ")",
        ]
        names.append(f"view_{i}")
    lines += ["", f"OBJECTS = [user, {', '.join(names)}]", ""]
    return "\n".join(lines)


def setup_repo(d: Path, peer: str) -> None:
    """A fresh repo (registry and online store deleted) with the definitions applied."""
    repo = repo_dir(d, peer)
    C.write_and_apply_repo(repo, peer, PROJECT, "file", _defs(peer, d))
    C.report({"setup": peer, "repo": str(repo)})


def _open(peer: str, repo: Path):
    if peer == "banquet":
        import banquet
        from banquet import FeatureStore

        store = FeatureStore(repo_path=repo)
        store.catalog()  # the registry, read once per process as a long-lived server does
        store.online_store  # noqa: B018 (opened on first use)
        return store, f"banquet {getattr(banquet, '__version__', '?')}"
    import feast
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    store.list_feature_views()  # load the registry outside the timing
    return store, f"feast {feast.__version__}"


def _preimport(*names: str) -> None:
    import importlib

    for n in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(n)


# Modules each system imports lazily on its first materialize (a long-lived process has them).
PREIMPORT = {
    "banquet": [
        "pyarrow.dataset",
        "pyarrow.compute",
        "banquet.materialize",
        "banquet.offline.file",
        "banquet.entity_data",
        "banquet.progress",
    ],
    "feast": [
        "dask",
        "dask.dataframe",
        "feast.infra.offline_stores.dask",
        "pyarrow.dataset",
        "pyarrow.parquet",
        "pyarrow.pandas_compat",
        "tqdm",
        "feast.infra.materialization",
        "feast.infra.compute_engines.local.compute",
        "feast.infra.compute_engines.local.nodes",
        "feast.infra.compute_engines.local.feature_builder",
        "feast.infra.compute_engines.local.backends.factory",
        "feast.infra.compute_engines.local.backends.pandas_backend",
        "feast.infra.compute_engines.local.arrow_table_value",
        "feast.infra.compute_engines.utils",
        "feast.infra.utils.arrow_utils",
        "numpy.rec",
        "concurrent.futures",
        "dask.dataframe.dask_expr",
        "dask.dataframe.io.parquet",
        "dask.array",
        "fsspec.implementations.local",
    ],
}


# --- children --------------------------------------------------------------------------------


def child_materialize(args) -> None:
    d = Path(args.data)
    store, version = _open(args.peer, repo_dir(d, args.peer))
    _preimport(*PREIMPORT[args.peer])
    tracker = instrument_materialize(store) if args.profile and args.peer == "banquet" else None
    gc.collect()
    before = set(sys.modules)
    # One call for every view, as `banquet materialize START END` / `feast materialize` run it.
    t = time.perf_counter()
    store.materialize(WINDOW_START, WINDOW_END)
    total = time.perf_counter() - t
    imported = sorted(m for m in set(sys.modules) - before if m.count(".") < 2)
    res = {
        "peer": args.peer,
        "version": version,
        "total_s": total,
        "peak_mb": C.rss_mb("VmHWM"),
        "imported_during_run": imported,
    }
    if tracker is not None:
        tracker.restore()
        res["profile"] = {
            "stages_s": {k: v / 1e9 for k, v in tracker.excl.items()},
            "wrapper_overhead_ns": tracker.overhead_ns(),
        }
    C.report(res)


def _key_sequences(d: Path, warm: int, iters_1: int, iters_100: int):
    """The same random existing keys for both systems: warm-up, 1-entity and 100-entity calls."""
    import numpy as np

    keys = np.load(d / "keys.npy")
    rng = np.random.default_rng([SEED, 7, len(keys)])
    w1 = keys[rng.integers(0, len(keys), warm)].tolist()
    w100 = keys[rng.integers(0, len(keys), (max(warm // 5, 1), 100))].tolist()
    s1 = keys[rng.integers(0, len(keys), iters_1)].tolist()
    s100 = keys[rng.integers(0, len(keys), (iters_100, 100))].tolist()
    return w1, w100, s1, s100


def _sample_keys(d: Path, n: int) -> tuple[list[int], list[int]]:
    import numpy as np

    keys = np.load(d / "keys.npy")
    rng = np.random.default_rng([SEED, 11, len(keys)])
    present = keys[rng.choice(len(keys), min(n, len(keys)), replace=False)].tolist()
    have = set(keys.tolist())
    absent = [k for k in (rng.integers(1 << 41, 1 << 42, 20).tolist()) if k not in have][:10]
    return present, absent


def _stats(ns: list[int]) -> dict:
    import numpy as np

    a = np.array(ns, dtype=np.float64) / 1000.0  # us
    p = np.percentile(a, [50, 90, 99, 99.9])
    return {
        "n": len(a),
        "p50_us": p[0],
        "p90_us": p[1],
        "p99_us": p[2],
        "p999_us": p[3],
        "mean_us": float(a.mean()),
        "min_us": float(a.min()),
        "max_us": float(a.max()),
    }


def child_serve(args) -> None:
    d = Path(args.data)
    store, version = _open(args.peer, repo_dir(d, args.peer))
    w1, w100, s1, s100 = _key_sequences(d, args.warmup, args.iters_1, args.iters_100)
    refs = list(FEATURE_REFS)
    get = store.get_online_features
    perf = time.perf_counter_ns

    for k in w1:
        get(features=refs, entity_rows=[{"user_id": k}]).to_dict()
    for ks in w100:
        get(features=refs, entity_rows=[{"user_id": k} for k in ks]).to_dict()

    load_before = os.getloadavg()
    results = {}
    for label, seq in (("1", [[k] for k in s1]), ("100", s100)):
        rows_list = [[{"user_id": k} for k in ks] for ks in seq]  # built outside the timing
        lat = []
        gc.collect()
        for rows in rows_list:
            t = perf()
            out = get(features=refs, entity_rows=rows).to_dict()
            lat.append(perf() - t)
        assert len(out[FEATURES[0]]) == len(rows), "wrong number of rows"
        results[label] = _stats(lat)
    load_after = os.getloadavg()

    # The check: a sample of present keys (in calls of 100) and some absent ones.
    present, absent = _sample_keys(d, args.sample)
    got: dict[str, dict] = {}
    for i in range(0, len(present), 100):
        ks = present[i : i + 100]
        out = get(features=refs, entity_rows=[{"user_id": k} for k in ks]).to_dict()
        for j, k in enumerate(ks):
            got[str(k)] = {f: out[f][j] for f in FEATURES}
    out = get(features=refs, entity_rows=[{"user_id": k} for k in absent]).to_dict()
    for j, k in enumerate(absent):
        got[str(k)] = {f: out[f][j] for f in FEATURES}
    Path(args.out).write_text(json.dumps({"present": present, "absent": absent, "values": got}))

    res = {
        "peer": args.peer,
        "version": version,
        "latency": results,
        "load_before": load_before,
        "load_after": load_after,
        "rss_mb": C.rss_mb("VmRSS"),
    }
    if args.profile and args.peer == "banquet":
        res["profile"] = profile_banquet(store, refs, s1, s100)
    C.report(res)


# --- banquet's profile (wrappers around its functions; banquet's code is unchanged) ------------


class Tracker:
    """Wraps functions with timers; each call's time is charged to its call path (the chain of
    wrapped functions it ran in), exclusive of the wrapped functions it called."""

    def __init__(self) -> None:
        self.excl: dict[str, int] = {}  # path -> ns, exclusive
        # per thread: [path, ns spent in wrapped children]; a stage on a worker thread (the
        # pipelined SQLite write) is a root path of its own, overlapping the caller's time
        self._local = threading.local()
        self.undo: list = []

    @property
    def stack(self) -> list[list]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def wrap(self, label: str, fn):
        perf = time.perf_counter_ns

        def wrapper(*a, **k):
            path = f"{self.stack[-1][0]} > {label}" if self.stack else label
            frame = [path, 0]
            self.stack.append(frame)
            t = perf()
            try:
                return fn(*a, **k)
            finally:
                dt = perf() - t
                self.stack.pop()
                self.excl[path] = self.excl.get(path, 0) + dt - frame[1]
                if self.stack:
                    self.stack[-1][1] += dt

        return wrapper

    def patch(self, obj, attr: str, label: str) -> bool:
        """Wrap ``obj.attr`` (if it exists; banquet's code moves); undone by ``restore``."""
        fn = getattr(obj, attr, None)
        if fn is None:
            return False
        had = attr in getattr(obj, "__dict__", {})
        self.undo.append((obj, attr, had, obj.__dict__.get(attr) if had else None))
        setattr(obj, attr, self.wrap(label, fn))
        return True

    def restore(self) -> None:
        for obj, attr, had, old in reversed(self.undo):
            if had:
                setattr(obj, attr, old)
            else:
                delattr(obj, attr)
        self.undo.clear()

    def overhead_ns(self) -> float:
        """What one wrapper adds to its caller's time."""
        f = self.wrap("_noop", lambda: None)
        perf = time.perf_counter_ns
        t = perf()
        for _ in range(5000):
            f()
        dt = (perf() - t) / 5000
        self.excl.pop("_noop", None)
        return dt


class _CoreShim:
    """Stands in for ``banquet._core`` in one module, so its kernels can be timed there."""

    def __init__(self, real, tracker: Tracker, names: dict[str, str]) -> None:
        self._real = real
        for name, label in names.items():
            if hasattr(real, name):
                setattr(self, name, tracker.wrap(label, getattr(real, name)))

    def __getattr__(self, name):
        return getattr(self._real, name)


def instrument_materialize(store) -> Tracker:
    """Timers around the stages of banquet's materialization (for ``materialize --profile``)."""
    import banquet.materialize as M

    tr = Tracker()
    tr.patch(
        store.online_store,
        "write",
        "SQLite upsert (store.write: Rust, one transaction; checkpoint in background)",
    )
    tr.patch(store.online_store, "ensure_view", "ensure_view")
    for attr in ("read_view", "read"):
        if tr.patch(
            store.offline_store,
            attr,
            f"offline read (offline_store.{attr}: Parquet, filter, checks)",
        ):
            break
    tr.patch(M, "latest_rows", "latest_rows (read ahead on a worker for all but the first view)")
    tr.patch(M, "write_winners", "write_winners")
    tr.patch(M, "record_intervals", "record_intervals (registry update)")
    tr.patch(M, "write_rows", "write_rows")
    real = M._core
    M._core = _CoreShim(
        real,
        tr,
        {
            "latest_per_key": "latest_per_key (Rust)",
            "encode_values": "encode_values (Rust)",
            "serialize_entity_keys": "serialize_entity_keys (Rust)",
            "key_order": "key_order (sort winners by serialized key, Rust)",
        },
    )
    tr.undo.append((M, "_core", True, real))
    return tr


def profile_banquet(store, refs, s1, s100) -> dict:
    """Per-call time of each stage of banquet's get_online_features (exclusive, by call path),
    medians over the calls; the SQLite lookups alone; a cProfile of the same calls."""
    import cProfile
    import io
    import pstats

    import numpy as np

    import banquet.request as R
    import banquet.serving as S

    perf = time.perf_counter_ns
    store.get_online_features(features=refs, entity_rows=[{"user_id": s1[0]}]).to_dict()
    request = R.resolve(store.catalog(), refs, False)
    plan = S._plan(request)
    tr = Tracker()
    overhead = tr.overhead_ns()

    class Core:  # the plan's Rust half, with its one call timed
        def __init__(self, inner):
            self.inner = inner
            self.serve = tr.wrap(
                "OnlinePlan.serve (Rust: keys, SQLite lookups, decode, Python lists)",
                inner.serve,
            )
            self.assemble = inner.assemble

    core = plan.core
    tr.patch(store, "get_online_features", "FeatureStore.get_online_features")
    tr.patch(R, "resolve", "resolve (cached)")
    tr.patch(S, "get_online_features", "serving.get_online_features")
    tr.patch(S.OnlineResponse, "to_dict", "to_dict")
    plan.core = Core(core)
    get = store.get_online_features

    out: dict = {"wrapper_overhead_ns": overhead}
    try:
        for label, seq in (("1", [[k] for k in s1[:2000]]), ("100", s100[:500])):
            rows_list = [[{"user_id": k} for k in ks] for ks in seq]
            splits: dict[str, list[int]] = {}
            totals = []
            gc.collect()
            for rows in rows_list:
                tr.excl.clear()
                t = perf()
                get(features=refs, entity_rows=rows).to_dict()
                totals.append(perf() - t)
                for k, v in tr.excl.items():
                    splits.setdefault(k, []).append(v)
            out[label] = {
                "total_p50_us": float(np.median(totals)) / 1000,
                "total_mean_us": float(np.mean(totals)) / 1000,
                "stages_p50_us": {k: float(np.median(v)) / 1000 for k, v in splits.items()},
                "stages_mean_us": {k: float(np.mean(v)) / 1000 for k, v in splits.items()},
                "timers_per_call": sum(1 for _ in splits) + 1,
            }
    finally:
        tr.restore()
        plan.core = core

    # The lookups alone (the store's read of both views, bytes back to Python): the floor
    # SQLite sets for this request, then again once every page of both tables has been read
    # into SQLite's page cache (a server that has run for a while).
    native = store.online_store.native
    view_names = [v for v, _, _ in VIEWS]
    ser = S._core.serialize_key_rows

    def statement_p50(seq) -> float:
        keys_list = [ser(["user_id"], [ks], ["int64"]) for ks in seq]
        ns = []
        for keys in keys_list:
            reqs = [(v, keys) for v in view_names]
            t = perf()
            native.read(PROJECT, reqs)
            ns.append(perf() - t)
        return float(np.median(ns)) / 1000

    seqs = {"1": [[k] for k in s1[:2000]], "100": s100[:500]}
    for label, seq in seqs.items():
        out[label]["sqlite_statement_only_p50_us"] = statement_p50(seq)
        rows_list = [[{"user_id": k} for k in ks] for ks in seq[:500]]
        pr = cProfile.Profile()
        pr.enable()
        for rows in rows_list:
            get(features=refs, entity_rows=rows).to_dict()
        pr.disable()
        buf = io.StringIO()
        pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(14)
        out[label]["cprofile"] = _trim_pstats(buf.getvalue(), len(rows_list))
    from banquet.online.sqlite import table_name

    for v in view_names:  # every page once, into SQLite's cache (128 MiB here)
        store.online_store.query(
            f"SELECT sum(length(value)), sum(length(entity_key)) FROM {table_name(PROJECT, v)}"
        )
    for label, seq in seqs.items():
        out[label]["sqlite_statement_warm_cache_p50_us"] = statement_p50(seq)
    return out


def _trim_pstats(text: str, calls: int) -> list[str]:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    out = [f"cProfile over {calls} calls (tottime = own time, s):"] + lines[start:]
    return [ln.replace(str(ROOT_STR), "") for ln in out]


ROOT_STR = str(C.ROOT) + "/"


# --- the machine ---------------------------------------------------------------------------------


def other_work() -> list[str]:
    """Compilers (cargo, rustc, maturin) and other benchmarks running now. Matched on the program name (argv[0],
    comm) or a bench script in the arguments: a plain ``pgrep -f cargo`` also matches
    unrelated processes whose environment or arguments mention ``.cargo/bin``."""
    me = {os.getpid(), os.getppid()}
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) in me:
            continue
        try:
            comm = (p / "comm").read_text().strip()
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        prog = os.path.basename(argv[0]) if argv else comm
        busy = (
            comm in ("cargo", "rustc", "maturin")
            or prog in ("cargo", "rustc", "maturin")
            or prog.startswith("cargo-")
        )
        busy = (
            busy
            or "--bench" in argv
            or any(a.endswith(("benches/historical.py", "benches/online.py")) for a in argv[1:6])
        )
        if busy and not _is_mine(int(p.name)):
            found.append(f"{p.name} {' '.join(argv)[:100]}")
    return found


def _is_mine(pid: int) -> bool:
    """A descendant of this process (its own children)."""
    try:
        while pid > 1:
            if pid == os.getpid():
                return True
            stat = Path(f"/proc/{pid}/stat").read_text()
            pid = int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return False


def wait_quiet(max_wait_s: float) -> bool:
    deadline = time.monotonic() + max_wait_s
    told = False
    while True:
        busy = other_work()
        if not busy:
            return True
        if time.monotonic() >= deadline:
            print(f"  ! still busy after {max_wait_s:.0f}s, running anyway: {busy[0]}", flush=True)
            return False
        if not told:
            print(
                f"  waiting for other work ({len(busy)} processes, e.g. {busy[0][:90]})", flush=True
            )
            told = True
        time.sleep(10)


def git_state() -> str:
    """The commit measured, and whether banquet's sources differ from it (others work here)."""

    def git(*a):
        return subprocess.run(
            ["git", "-C", str(C.ROOT), *a], capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "python/banquet", "rust")
    n = len(dirty.splitlines())
    return f"commit {head}" + (
        f" + {n} uncommitted change(s) under python/banquet, rust/" if n else " (clean)"
    )


def python_speed() -> float:
    """A yardstick for this machine's single-core Python speed: ``sum(range(1000))`` in us
    (best of 5 x 2,000), to compare machines."""
    import timeit

    return min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        one, five, fifteen = os.getloadavg()
        return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"


# --- the parent ------------------------------------------------------------------------------


def python_for(peer: str) -> Path:
    return C.BANQUET_PY if peer == "banquet" else C.PEERS_PY


def count_keys(d: Path, peer: str) -> dict[str, int]:
    import sqlite3

    db = repo_dir(d, peer) / "data" / "online_store.db"
    conn = sqlite3.connect(db)
    try:
        out = {}
        for view, _, _ in VIEWS:
            if peer == "banquet":
                from banquet.online.sqlite import table_name

                q = f"SELECT count(*) FROM {table_name(PROJECT, view)}"
            else:
                q = f'SELECT count(DISTINCT entity_key) FROM "{PROJECT}_{view}"'
            out[view] = conn.execute(q).fetchone()[0]
        return out
    finally:
        conn.close()


def _same(a, b, typ: str) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if typ == "float32":
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if typ == "float64":
        return a == b or math.isclose(a, b, rel_tol=1e-12)
    return a == b and type(a) is type(b)


def verify(d: Path, samples: dict[str, dict]) -> list[str]:
    problems = []
    peers = list(samples)
    any_s = samples[peers[0]]
    present, absent = any_s["present"], any_s["absent"]
    expected = expected_rows(d, present)
    for peer, s in samples.items():
        bad = 0
        for k in present:
            got = s["values"].get(str(k))
            for f in FEATURES:
                if got is None or not _same(got[f], expected[k][f], FTYPE[f]):
                    bad += 1
                    if bad <= 3:
                        problems.append(
                            f"{peer}: key {k} {f}: got {None if got is None else got[f]!r}, "
                            f"source has {expected[k][f]!r}"
                        )
        for k in absent:
            vals = s["values"].get(str(k), {})
            if any(vals.get(f) is not None for f in FEATURES):
                bad += 1
                problems.append(f"{peer}: absent key {k} returned values {vals}")
        if bad > 3:
            problems.append(f"{peer}: {bad} values differ from the source in all")
    if len(peers) == 2:
        a, b = samples[peers[0]]["values"], samples[peers[1]]["values"]
        diff = sum(
            1 for k in a for f in FEATURES if k in b and not _same(a[k][f], b[k][f], FTYPE[f])
        )
        if diff:
            problems.append(f"{peers[0]} and {peers[1]} disagree on {diff} values")
    return problems


def run_all(args) -> None:
    d = ensure_data(args.keys, args.rows_per_key)
    logs = d / "logs"
    logs.mkdir(exist_ok=True)
    me = str(Path(__file__).resolve())
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    info = C.machine_info()
    print(f"machine: {C.machine_line(info)}")
    print(f"command: {' '.join(sys.argv)}")
    print(
        f"data: {args.keys:,} keys x {args.rows_per_key} rows per view = "
        f"{args.keys * args.rows_per_key:,} source rows per view, 2 views x 10 features"
    )
    if not args.no_wait:
        wait_quiet(args.wait_max)
    start_uptime = uptime()
    print(f"uptime when the runs start: {start_uptime}", flush=True)
    info["git"] = git_state()  # when the runs start; other engineers may commit during them
    print(f"banquet: {info['git']}")
    info["speed"] = f"{python_speed():.1f}"
    print(f"python speed: sum(range(1000)) takes {info['speed']} us", flush=True)

    res: dict[str, dict] = {p: {"mat": [], "serve": []} for p in peers}
    failures: dict[str, str] = {}
    loads: list[str] = [f"at the start: {start_uptime}"]
    busy_seen: list[str] = []
    samples: dict[str, dict] = {}
    counts: dict[str, dict] = {}
    for rep in range(args.repeat):
        for peer in peers:
            if peer in failures:
                continue
            py = str(python_for(peer))
            if not Path(py).exists():
                failures[peer] = f"{py} missing (see benches/requirements.txt)"
                continue
            common = ["--peer", peer, "--data", str(d)]
            r = C.run_child([py, me, "setup", *common], args.timeout, logs / f"setup_{peer}.log")
            if not r.ok:
                failures[peer] = f"setup failed: {r.error}"
                print(f"  {peer:8} setup FAILED: {r.error}", flush=True)
                continue
            if not args.no_wait:
                wait_quiet(args.wait_max)
            # The previous steps' dirty pages (Feast's store file grows to ~380 MB) would
            # otherwise be written back during this step and stall its fsyncs.
            os.sync()
            busy = other_work()
            prof = ["--profile"] if args.profile and peer == "banquet" else []
            r = C.run_child(
                [py, me, "materialize", *common, *prof],
                args.timeout,
                logs / f"materialize_{peer}.log",
            )
            busy += other_work()
            if not r.ok:
                failures[peer] = f"materialize failed: {r.error}"
                print(f"  {peer:8} materialize FAILED: {r.error}", flush=True)
                continue
            m = dict(r.result, busy=busy[:3], run=rep + 1)
            if busy:
                busy_seen.append(f"{peer} materialize run {rep + 1}: {busy[0]}")
            res[peer]["mat"].append(m)
            counts[peer] = count_keys(d, peer)
            keys_total = sum(counts[peer].values())
            print(
                f"  {peer:8} materialize run {rep + 1}: {m['total_s']:8.2f}s "
                f"{keys_total:,} keys in the store; peak {m['peak_mb']:.0f} MB"
                + ("  (other work was running)" if busy else ""),
                flush=True,
            )
            if m.get("imported_during_run"):
                print(
                    f"  {peer:8} note: imported during the timing: {m['imported_during_run'][:10]}"
                )
            if not args.no_wait:
                wait_quiet(args.wait_max)
            busy = other_work()
            out = d / f"sample_{peer}.json"
            cmd = [
                py,
                me,
                "serve",
                *common,
                "--out",
                str(out),
                "--warmup",
                str(args.warmup),
                "--iters-1",
                str(args.iters_1),
                "--iters-100",
                str(args.iters_100),
                "--sample",
                str(args.sample),
            ]
            if args.profile and peer == "banquet":
                cmd.append("--profile")
            r = C.run_child(cmd, args.timeout, logs / f"serve_{peer}.log")
            busy += other_work()
            loads.append(f"after {peer} serve: {uptime()}")
            if not r.ok:
                failures[peer] = f"serve failed: {r.error}"
                print(f"  {peer:8} serve FAILED: {r.error}", flush=True)
                continue
            s = dict(r.result, busy=busy[:3], run=rep + 1)
            res[peer]["serve"].append(s)
            if busy:
                busy_seen.append(f"{peer} serve run {rep + 1}: {busy[0]}")
            samples[peer] = json.loads(out.read_text())
            l1, l100 = s["latency"]["1"], s["latency"]["100"]
            print(
                f"  {peer:8} serve run {rep + 1}: 1 entity p50 {l1['p50_us']:.1f} us p99 {l1['p99_us']:.1f} us; "
                f"100 entities p50 {l100['p50_us']:.1f} us p99 {l100['p99_us']:.1f} us; "
                f"load {s['load_before'][0]:.2f} -> {s['load_after'][0]:.2f}"
                + ("  (other work was running)" if busy else ""),
                flush=True,
            )

    problems = verify(d, samples) if samples else ["no samples to verify"]
    for p in problems:
        print(f"  !!! {p}", flush=True)
    if not problems:
        n = len(next(iter(samples.values()))["present"])
        print(
            f"  verified: {', '.join(samples)} return the source's latest values for {n} sampled keys "
            f"(20 features each, float32 rel. tol. 1e-6) and nothing for absent keys",
            flush=True,
        )
    for peer, c in counts.items():
        if any(v != args.keys for v in c.values()):
            problems.append(f"{peer}: online store holds {c} keys, expected {args.keys} per view")
            print(f"  !!! {problems[-1]}")

    for m in res.get("banquet", {}).get("mat", [])[:1]:
        if "profile" in m:
            print("\n" + "\n".join(materialize_profile_lines(m)))
    for s in res.get("banquet", {}).get("serve", [])[:1]:
        if "profile" in s:
            print("\n" + "\n".join(profile_lines(s["profile"])))
            for label in ("1", "100"):
                print(
                    f"\n  banquet, {label} entit{'y' if label == '1' else 'ies'}: "
                    + "\n    ".join(s["profile"][label]["cprofile"])
                )

    (d / "results.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "info": info,
                "results": res,
                "loads": loads,
                "busy": busy_seen,
                "counts": counts,
                "problems": problems,
            }
        )
    )
    md = render(args, info, res, failures, problems, loads, busy_seen, counts)
    print("\n\n## results (markdown)\n")
    print(md)
    if args.write_md:
        Path(args.write_md).write_text(md)
    if problems:
        sys.exit(2)


def _quiet(runs: list[dict]) -> list[dict]:
    """The runs during which no other work was seen (all of them if there are none)."""
    return [r for r in runs if not r.get("busy")] or runs


def _best_mat(runs: list[dict]) -> dict | None:
    return min(_quiet(runs), key=lambda r: r["total_s"]) if runs else None


def _best_serve(runs: list[dict], label: str) -> dict | None:
    return (
        min((r["latency"][label] for r in _quiet(runs)), key=lambda x: x["p50_us"])
        if runs
        else None
    )


def render(args, info, res, failures, problems, loads, busy_seen, counts) -> str:
    b, f = res.get("banquet", {}), res.get("feast", {})
    n_keys = 2 * args.keys
    n_src = 2 * args.keys * args.rows_per_key
    bm, fm = _best_mat(b.get("mat", [])), _best_mat(f.get("mat", []))
    rows = []

    def us(x):
        return f"{x:,.1f} us" if x < 1000 else f"{x / 1000:,.2f} ms"

    def ratio(fv, bv):
        return f"{fv / bv:,.1f}x" if fv and bv else "-"

    for label, n in (("1", 1), ("100", 100)):
        bs, fs = _best_serve(b.get("serve", []), label), _best_serve(f.get("serve", []), label)
        for stat, name in (("p50_us", "p50"), ("p99_us", "p99"), ("mean_us", "mean")):
            rows.append(
                [
                    f"get_online_features {n} entit{'y' if n == 1 else 'ies'} x 20 features, {name}",
                    us(bs[stat]) if bs else "-",
                    us(fs[stat]) if fs else "-",
                    ratio(fs and fs[stat], bs and bs[stat]),
                ]
            )
    rows.append(
        [
            "materialize 2 views, wall (from a fresh store)",
            f"{bm['total_s']:.2f} s" if bm else "-",
            f"{fm['total_s']:.1f} s" if fm else "-",
            ratio(fm and fm["total_s"], bm and bm["total_s"]),
        ]
    )
    rows.append(
        [
            f"materialize: distinct keys written / s ({n_keys:,} keys)",
            f"{n_keys / bm['total_s']:,.0f}" if bm else "-",
            f"{n_keys / fm['total_s']:,.0f}" if fm else "-",
            ratio(fm and fm["total_s"], bm and bm["total_s"]),
        ]
    )
    rows.append(
        [
            f"materialize: source rows read / s ({n_src:,} rows)",
            f"{n_src / bm['total_s']:,.0f}" if bm else "-",
            f"{n_src / fm['total_s']:,.0f}" if fm else "-",
            ratio(fm and fm["total_s"], bm and bm["total_s"]),
        ]
    )
    rows.append(
        [
            "materialize peak RSS",
            f"{bm['peak_mb']:.0f} MB" if bm else "-",
            f"{fm['peak_mb']:.0f} MB" if fm else "-",
            "-",
        ]
    )
    versions = [r["version"] for p in (b, f) for r in p.get("serve", [])[:1]]
    table = C.markdown_table(
        ["metric", "banquet", "Feast", "Feast / banquet (time)"], rows, right={1, 2, 3}
    )

    # targets
    t_lines = []
    bs1, fs1 = _best_serve(b.get("serve", []), "1"), _best_serve(f.get("serve", []), "1")
    bs100, fs100 = _best_serve(b.get("serve", []), "100"), _best_serve(f.get("serve", []), "100")

    def target(name, value, goal, fmt, better="low"):
        if value is None:
            t_lines.append(f"| {name} | {fmt(goal)} | - | not measured |")
            return
        met = value <= goal if better == "low" else value >= goal
        t_lines.append(
            f"| {name} | {'<=' if better == 'low' else '>='} {fmt(goal)} | {fmt(value)} | "
            f"{'met' if met else '**missed**'} |"
        )

    target(
        "banquet p50, 1 entity", bs1 and bs1["p50_us"], TARGETS["p50_1"], lambda v: f"{v:,.1f} us"
    )
    target(
        "banquet p99, 1 entity", bs1 and bs1["p99_us"], TARGETS["p99_1"], lambda v: f"{v:,.1f} us"
    )
    target(
        "banquet p50, 100 entities",
        bs100 and bs100["p50_us"],
        TARGETS["p50_100"],
        lambda v: f"{v:,.1f} us",
    )
    target(
        "banquet materialization, keys written / s",
        bm and n_keys / bm["total_s"],
        TARGETS["mat_keys_per_s"],
        lambda v: f"{v:,.0f}",
        "high",
    )
    target(
        "speed-up vs Feast, p50 1 entity",
        bs1 and fs1 and fs1["p50_us"] / bs1["p50_us"],
        TARGETS["speedup_1"],
        lambda v: f"{v:,.1f}x",
        "high",
    )
    target(
        "speed-up vs Feast, p50 100 entities",
        bs100 and fs100 and fs100["p50_us"] / bs100["p50_us"],
        TARGETS["speedup_100"],
        lambda v: f"{v:,.1f}x",
        "high",
    )
    target(
        "speed-up vs Feast, materialization",
        bm and fm and fm["total_s"] / bm["total_s"],
        TARGETS["speedup_mat"],
        lambda v: f"{v:,.1f}x",
        "high",
    )
    targets = "| target | goal | measured | |\n|---|---:|---:|---|\n" + "\n".join(t_lines)

    lines = [
        f"Date: {info['date']}. Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM; "
        f"{info['os']}; Python {info['python']}. Versions: {', '.join(versions) or '-'} "
        f"(banquet at {info.get('git', '?')}).",
        "",
        f"Command: `.venv/bin/python benches/{' '.join([Path(sys.argv[0]).name] + sys.argv[1:])}`",
        "",
        f"Data: {args.keys:,} int64 keys x {args.rows_per_key} rows per key per view "
        f"({args.keys * args.rows_per_key:,} source rows per view), 2 views x 10 features. Latency: "
        f"{args.warmup} warm-up calls, then {args.iters_1:,} calls of 1 entity and {args.iters_100:,} "
        f"of 100 entities; {'best run of ' + str(args.repeat) + ' by p50' if args.repeat > 1 else 'one run'}.",
        "",
        "Machine load (`uptime`): " + "; ".join(loads) + ". Single-core Python yardstick: "
        f"`sum(range(1000))` takes {info.get('speed', '?')} us here (rerun it to compare a machine).",
        "",
        table,
        "",
        targets,
    ]
    notes = [f"- {p}: {why}" for p, why in failures.items()]
    notes += [f"- check: {p}" for p in problems]
    if not problems:
        notes.append(
            f"- check: both systems return the source's latest values for {args.sample} sampled keys "
            "(20 features each; float32 within 1e-6 relative) and nothing for 10 absent keys; "
            f"keys in the online stores: {counts}"
        )
    for b_ in busy_seen:
        notes.append(
            f"- other work was running during {b_[:160]} (the table uses quiet runs when there are any)"
        )
    if args.repeat > 1:
        for peer, r in res.items():
            mats = ", ".join(f"{m['total_s']:.2f}" for m in r["mat"])
            p1 = ", ".join(
                f"{x['latency']['1']['p50_us']:.0f}/{x['latency']['1']['p99_us']:.0f}"
                for x in r["serve"]
            )
            p100 = ", ".join(
                f"{x['latency']['100']['p50_us']:.0f}/{x['latency']['100']['p99_us']:.0f}"
                for x in r["serve"]
            )
            notes.append(
                f"- {peer}, every run: materialize {mats} s; 1 entity p50/p99 {p1} us; "
                f"100 entities p50/p99 {p100} us"
            )
    lines += ["", *notes]
    prof = [r["profile"] for r in b.get("serve", []) if "profile" in r]
    mprof = [materialize_profile_lines(r) for r in b.get("mat", []) if "profile" in r]
    if prof or mprof:
        lines += [
            "",
            "```",
            *(profile_lines(prof[0]) if prof else []),
            *(mprof[0] if mprof else []),
            "```",
        ]
    return "\n".join(lines) + "\n"


OWN = {  # what a wrapped function's own (exclusive) time is
    "FeatureStore.get_online_features": "FeatureStore.get_online_features itself (in-call imports, catalog)",
    "serving.get_online_features": "Python assembly in serving.get_online_features (statuses, ttl, lists, dicts)",
    "SQLite read (store.read)": "SQLite read: statement, fetch, dicts of the rows (store.read)",
    "latest_rows": "latest_rows itself",
    "write_winners": "write_winners itself (take of keys/ts/features per batch)",
    "write_rows": "write_rows itself (casts, to_pylist of keys/blobs, ts lists)",
}


def _tree(stages: dict[str, float], total: float, unit: str, scale: float) -> list[str]:
    out = []
    for path in sorted(stages):
        depth = path.count(" > ")
        leaf = path.rsplit(" > ", 1)[-1]
        v = stages[path]
        out.append(
            f"    {v * scale:9.1f} {unit} {100 * v / total:5.1f}%  {'  ' * depth}{OWN.get(leaf, leaf)}"
        )
    rest = total - sum(stages.values())
    out.append(
        f"    {rest * scale:9.1f} {unit} {100 * rest / total:5.1f}%  (outside the wrapped functions; "
        "medians need not add up)"
        if unit == "us"
        else f"    {rest * scale:9.1f} {unit} {100 * rest / total:5.1f}%  (outside the wrapped functions)"
    )
    return out


def profile_lines(p: dict) -> list[str]:
    out = [
        f"banquet get_online_features, per-call time by stage (median over calls, exclusive of "
        f"the nested stages; each timer adds ~{p['wrapper_overhead_ns'] / 1000:.2f} us to its caller)"
    ]
    for label in ("1", "100"):
        q = p[label]
        n = "1 entity" if label == "1" else "100 entities"
        out.append(
            f"  {n} x 20 features: total p50 {q['total_p50_us']:.1f} us (mean {q['total_mean_us']:.1f} us), "
            f"{q['timers_per_call']} timers"
        )
        out += _tree(q["stages_p50_us"], q["total_p50_us"], "us", 1.0)
        out.append(
            f"    SQLite lookups alone (store.read of both views, cached statements): p50 "
            f"{q['sqlite_statement_only_p50_us']:.1f} us; with both tables in SQLite's page cache: "
            f"{q['sqlite_statement_warm_cache_p50_us']:.1f} us"
        )
    return out


def materialize_profile_lines(m: dict) -> list[str]:
    p = m.get("profile")
    if not p:
        return []
    total = m["total_s"]
    out = [f"banquet materialize, both views: {total:.2f} s by stage (exclusive of nested stages)"]
    out += _tree(p["stages_s"], total, "ms", 1000.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd")
    for name in ("setup", "materialize", "serve"):
        ch = sub.add_parser(name, help=f"(internal) {name} one system")
        ch.add_argument("--peer", required=True, choices=PEERS)
        ch.add_argument("--data", required=True)
        if name == "materialize":
            ch.add_argument("--profile", action="store_true")
        if name == "serve":
            ch.add_argument("--out", required=True)
            ch.add_argument("--warmup", type=int, default=500)
            ch.add_argument("--iters-1", type=int, default=5000)
            ch.add_argument("--iters-100", type=int, default=1000)
            ch.add_argument("--sample", type=int, default=500)
            ch.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--keys", type=int, default=100_000, help="distinct entity keys (default 100000)"
    )
    ap.add_argument(
        "--rows-per-key", type=int, default=5, help="source rows per key per view (default 5)"
    )
    ap.add_argument("--quick", action="store_true", help="10k keys, fewer calls (smoke run)")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument(
        "--warmup", type=int, default=500, help="warm-up calls of 1 entity (and 1/5 as many of 100)"
    )
    ap.add_argument("--iters-1", type=int, default=5000)
    ap.add_argument("--iters-100", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=500, help="keys checked against the source")
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per system (fresh store each); best reported"
    )
    ap.add_argument("--profile", action="store_true", help="split banquet's per-call time")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per child (default 3600)")
    ap.add_argument(
        "--no-wait", action="store_true", help="don't wait for compilers/other benchmarks"
    )
    ap.add_argument("--wait-max", type=float, default=1800)
    ap.add_argument("--write-md", help="also write the markdown results to this file")
    args = ap.parse_args()
    if args.cmd == "setup":
        setup_repo(Path(args.data), args.peer)
    elif args.cmd == "materialize":
        child_materialize(args)
    elif args.cmd == "serve":
        child_serve(args)
    else:
        if args.quick:
            args.keys, args.iters_1, args.iters_100, args.warmup = 10_000, 1000, 200, 200
        run_all(args)


if __name__ == "__main__":
    main()
