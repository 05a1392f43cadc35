"""Historical retrieval, whole path: Parquet on disk -> point-in-time join -> one Arrow table.

Every peer computes the same thing: for each entity row and each of two feature views, the
feature row with the same ``user_id`` and ``entity_ts - ttl <= feature_ts <= entity_ts``
(both inclusive); the latest ``feature_ts`` wins, ties go to the larger ``created``; one row
per entity row, in input order; nulls when nothing matches. View A has a 7-day ttl, view B 30.

Sizes are named by feature rows per view x entity rows (issue #14): 1Mx10k, 1Mx1M, 10Mx10k,
10Mx1M, 10Mx10M. The feature data has one distinct user id per 10 feature rows (100k keys at
1M rows, 1M at 10M), so 10k entity rows touch ~9% of the history at 1M and ~1% at 10M: the
sizes with few entity rows measure whether an engine keeps only the rows of the asked keys.
The older names (quick, 1m = 1Mx1M, 10m = 10M rows x 1M entity rows over only 100k keys)
still generate the data of the earlier runs.

Peers: banquet (this repo's venv), polars ``join_asof``, DuckDB ``ASOF JOIN`` and Feast 0.67
on its ``duckdb`` offline store (all from benches/.venv-peers; pandas ``merge_asof`` on
request with --peers). Each run is its own subprocess; the child times itself from the first
Parquet read to the final Arrow table and reports its peak RSS (VmHWM, read before it writes
its output). The parent checks every output against banquet's, row for row, and banquet's
against a small numpy oracle.

    python3 -m venv benches/.venv-peers && benches/.venv-peers/bin/pip install -r benches/requirements.txt
    .venv/bin/python benches/historical.py --quick              # 100k smoke run
    .venv/bin/python benches/historical.py --repeat 3 --repeat-at 10Mx10M=1   # issue #14 sizes
    .venv/bin/python benches/historical.py --sizes 1Mx1M --profile  # where banquet's time goes
    .venv/bin/python benches/historical.py --sizes 10Mx10k --peers banquet --memory-limit 64MiB
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GEN_VERSION = 1  # bump when the generated data changes
SEED = 20240611
US = 1_000_000
DAY_US = 86_400 * US
T0_US = 1_735_689_600 * US  # 2025-01-01T00:00:00Z
SPAN_DAYS = 90

# size -> (entity rows, feature rows per view, distinct user ids in the feature data)
SIZES = {
    "quick": (100_000, 100_000, 10_000),
    # issue #14: feature rows per view x entity rows; one key per 10 feature rows
    "1Mx10k": (10_000, 1_000_000, 100_000),
    "1Mx1M": (1_000_000, 1_000_000, 100_000),
    "10Mx10k": (10_000, 10_000_000, 1_000_000),
    "10Mx1M": (1_000_000, 10_000_000, 1_000_000),
    "10Mx10M": (10_000_000, 10_000_000, 1_000_000),
    # the earlier runs' sizes (benches/README.md before #14): entity rows x feature rows
    "1m": (1_000_000, 1_000_000, 100_000),
    "10m": (1_000_000, 10_000_000, 100_000),
}
ISSUE_SIZES = ["1Mx10k", "1Mx1M", "10Mx10k", "10Mx1M", "10Mx10M"]


def _n(x: int) -> str:
    return f"{x // 1_000_000}M" if x % 1_000_000 == 0 else f"{x // 1000}k"


SIZE_LABEL = {
    s: f"{_n(f)} feature rows/view x {_n(e)} entity rows ({_n(k)} keys; 2 views x 5 features)"
    for s, (e, f, k) in SIZES.items()
}

# (view name, file, ttl in days, [(feature, arrow type name)])
VIEWS = [
    (
        "user_txn_7d",
        "view_a.parquet",
        7,
        [
            ("a_amount", "float64"),
            ("a_count", "int64"),
            ("a_score", "float32"),
            ("a_country", "string"),
            ("a_max", "float64"),
        ],
    ),
    (
        "user_profile_30d",
        "view_b.parquet",
        30,
        [
            ("b_balance", "float64"),
            ("b_logins", "int64"),
            ("b_risk", "float32"),
            ("b_age_days", "int64"),
            ("b_ltv", "float64"),
        ],
    ),
]
FEATURE_REFS = [f"{v}:{f}" for v, _, _, feats in VIEWS for f, _ in feats]
FEATURES = [f for _, _, _, feats in VIEWS for f, _ in feats]
PEERS = ["banquet", "polars", "duckdb", "pandas", "feast"]
DEFAULT_PEERS = ["banquet", "polars", "duckdb", "feast"]  # the issue's peers
COUNTRIES = [
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
    "KR",
    "AU",
    "CH",
    "AT",
    "BE",
    "NO",
]


# --- data ------------------------------------------------------------------------------------


def size_dir(size: str) -> Path:
    return C.DATA / size


def ensure_data(size: str) -> Path:
    """Generate the size's Parquet files unless a matching cache is there."""
    d = size_dir(size)
    n_ent, n_feat, n_keys = SIZES[size]
    want = {
        "gen": GEN_VERSION,
        "seed": SEED,
        "entity_rows": n_ent,
        "feature_rows": n_feat,
        "keys": n_keys,
    }
    manifest = d / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return d
    print(f"  generating {SIZE_LABEL[size]} into {d} ...", flush=True)
    t = time.perf_counter()
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    _generate(d, n_ent, n_feat, n_keys)
    manifest.write_text(json.dumps(want))
    print(f"  generated in {time.perf_counter() - t:.1f}s", flush=True)
    return d


def _generate(d: Path, n_ent: int, n_feat: int, n_keys: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([SEED, n_ent, n_feat, n_keys])
    ts_type = pa.timestamp("us", tz="UTC")
    span_s = SPAN_DAYS * 86_400
    picked: list[tuple[np.ndarray, np.ndarray]] = []  # (user_id, ts) per view, for edge cases
    for _, fname, _, feats in VIEWS:
        n_dup = n_feat // 20  # 5% of rows repeat an existing (user_id, ts) with another created
        n_base = n_feat - n_dup
        uid = rng.integers(0, n_keys, n_base, dtype=np.int64)
        ts = T0_US + rng.integers(0, span_s, n_base, dtype=np.int64) * US
        src = rng.integers(0, n_base, n_dup)
        uid = np.concatenate([uid, uid[src]])
        ts = np.concatenate([ts, ts[src]])
        created = ts + rng.integers(1, 3_600 * US, n_feat, dtype=np.int64)
        perm = rng.permutation(n_feat)  # files in no particular order
        uid, ts, created = uid[perm], ts[perm], created[perm]
        _break_full_ties(uid, ts, created)
        picked.append((uid, ts))
        cols = {
            "user_id": pa.array(uid),
            "event_timestamp": pa.array(ts, ts_type),
            "created": pa.array(created, ts_type),
        }
        for fi, (name, typ) in enumerate(feats):
            mask = rng.random(n_feat) < 0.01 if fi in (0, 3) else None  # some stored nulls
            if typ == "float64":
                vals = rng.normal(100.0, 30.0, n_feat)
            elif typ == "float32":
                vals = rng.random(n_feat, dtype=np.float32)
            elif typ == "int64":
                vals = rng.integers(0, 10_000, n_feat, dtype=np.int64)
            else:
                idx = rng.integers(0, len(COUNTRIES), n_feat, dtype=np.int32)
                vals = np.array(COUNTRIES, dtype=object)[idx]
            cols[name] = pa.array(
                vals, type=getattr(pa, typ)() if typ != "string" else pa.string(), mask=mask
            )
        pq.write_table(pa.table(cols), d / fname)
        del cols, uid, ts, created

    # Entity rows: 10% of user ids have no feature rows at all; times after the first week.
    uid = rng.integers(0, int(n_keys * 1.1), n_ent, dtype=np.int64)
    ts = T0_US + 7 * DAY_US + rng.integers(0, span_s - 7 * 86_400, n_ent, dtype=np.int64) * US
    # Edge cases, 1% of rows each: entity ts equal to a feature ts (upper bound, inclusive),
    # exactly ttl after it (lower bound, inclusive) and 1 µs past that (no longer matches).
    a_ttl, b_ttl = VIEWS[0][2] * DAY_US, VIEWS[1][2] * DAY_US
    cases = [(0, 0), (0, a_ttl), (0, a_ttl + 1), (1, 0), (1, b_ttl), (1, b_ttl + 1)]
    k = n_ent // 100
    pos = rng.permutation(n_ent)[: k * len(cases)].reshape(len(cases), k)
    for (vi, offset), p in zip(cases, pos):
        fu, ft = picked[vi]
        j = rng.integers(0, len(fu), k)
        uid[p] = fu[j]
        ts[p] = ft[j] + offset
    pq.write_table(
        pa.table({"user_id": pa.array(uid), "event_timestamp": pa.array(ts, ts_type)}),
        d / "entity.parquet",
    )


def _break_full_ties(uid, ts, created) -> None:
    """No two rows share (user_id, ts, created): a full tie's winner is up to each engine."""
    import numpy as np

    while True:
        o = np.lexsort((created, ts, uid))
        u, t, c = uid[o], ts[o], created[o]
        tie = (u[1:] == u[:-1]) & (t[1:] == t[:-1]) & (c[1:] == c[:-1])
        if not tie.any():
            return
        created[o[1:][tie]] += 1


# --- feature repos (applied once, outside the timing) -----------------------------------------


def repo_dir(size: str, peer: str) -> Path:
    return size_dir(size) / f"{peer}_repo"


def _defs(kind: str, data: Path) -> str:
    """The feature definitions, for banquet or Feast (the same API shape)."""
    types_mod = "banquet.types" if kind == "banquet" else "feast.types"
    lines = [
        "from datetime import timedelta",
        "",
        f"from {kind} import Entity, FeatureView, Field, FileSource",
        f"from {types_mod} import Float32, Float64, Int64, String",
    ]
    if kind == "feast":
        lines.append("from feast import ValueType")
        lines += [
            "",
            'user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)',
        ]
    else:
        lines += ["", 'user = Entity(name="user", join_keys=["user_id"])']
    dtype = {"float64": "Float64", "float32": "Float32", "int64": "Int64", "string": "String"}
    names = []
    for i, (view, fname, ttl, feats) in enumerate(VIEWS):
        schema = ", ".join(f'Field(name="{f}", dtype={dtype[t]})' for f, t in feats)
        lines += [
            "",
            f"src_{i} = FileSource(",
            f'    name="{view}_src", path="{data / fname}",',
            '    timestamp_field="event_timestamp", created_timestamp_column="created",',
            ")",
            f"view_{i} = FeatureView(",
            f'    name="{view}", entities=[user], ttl=timedelta(days={ttl}),',
            f"    schema=[{schema}],",
            f"    source=src_{i},",
            ")",
        ]
        names.append(f"view_{i}")
    lines += ["", f"OBJECTS = [user, {', '.join(names)}]", ""]
    return "\n".join(lines)


def setup_repo(size: str, peer: str) -> None:
    """Write the feature repo for banquet or Feast and apply it (runs in that peer's venv)."""
    data = size_dir(size)
    repo = repo_dir(size, peer)
    offline = "file" if peer == "banquet" else "duckdb"
    C.write_and_apply_repo(repo, peer, "bench_hist", offline, _defs(peer, data))
    (repo / "applied").write_text("ok\n")
    C.report({"setup": peer, "repo": str(repo)})


# --- peers: each returns (run, version); run() is what is timed --------------------------------
# Modules a peer imports lazily on its first call are imported before the clock starts (a
# long-lived process has them already); the child reports any that still load during the run.


def _preimport(*names: str) -> None:
    import contextlib
    import importlib

    for n in names:
        with contextlib.suppress(ImportError):
            importlib.import_module(n)


MEMORY_LIMIT: str | None = None  # --memory-limit of the banquet child
BANQUET_NOTES: list[str] = []


def open_banquet_store(repo: Path, memory_limit: str | None):
    """The feature store of ``repo``; with ``memory_limit``, from a copy of its
    feature_store.yaml with ``offline_store.memory_limit`` set. A banquet whose config does
    not know the key (before issue #14) rejects it: then the store opens without it and the
    returned note says the limit was ignored (detected by trying, not by version)."""
    from banquet import FeatureStore
    from banquet.errors import ConfigError

    if memory_limit is None:
        return FeatureStore(repo_path=repo), ""
    text = (repo / "feature_store.yaml").read_text()
    marker = "offline_store:\n  type: file\n"
    if marker not in text:
        raise SystemExit(f"{repo}/feature_store.yaml: no file offline store to limit")
    limited = repo / "feature_store.memory_limit.yaml"
    limited.write_text(text.replace(marker, f"{marker}  memory_limit: {memory_limit}\n"))
    try:
        return FeatureStore(repo_path=repo, fs_yaml_file=limited), f"memory_limit {memory_limit}"
    except ConfigError as e:
        why = "unknown key" if "unknown key" in str(e) else str(e)
        return FeatureStore(repo_path=repo), f"memory_limit {memory_limit} IGNORED (config: {why})"


def peer_banquet(d: Path, profile: dict | None):
    import pyarrow.parquet as pq

    import banquet

    _preimport(
        "pyarrow.dataset",
        "banquet.historical",
        "banquet.offline.file",
        "banquet.request",
        "banquet.entity_data",
    )
    store, note = open_banquet_store(repo_dir(d.name, "banquet"), MEMORY_LIMIT)
    if profile is not None and note:
        profile[f"note: {note}"] = 0.0
    BANQUET_NOTES.append(note)
    store.catalog()  # the registry is read once per process, like a long-lived store
    store.offline_store  # noqa: B018 (opened on first use)
    if profile is not None:
        _instrument_banquet(profile)

    def run():
        t = time.perf_counter()
        entity = pq.read_table(d / "entity.parquet")
        if profile is not None:
            profile["entity parquet read"] = time.perf_counter() - t
        return store.get_historical_features(entity, FEATURE_REFS).to_arrow()

    return run, f"banquet {getattr(banquet, '__version__', '?')}"


def _instrument_banquet(timers: dict) -> None:
    """Wrap the stages of banquet's historical path with wall-clock timers (no change to
    banquet). Labels starting with ``view:`` run once per feature view, on the views' threads
    (two-pass views run concurrently), so they are summed over the views and can add up to
    more than the wall time; the others run once on the caller's thread. Hooks that no
    longer exist are skipped and listed. For where the CPU goes inside the Rust scan, use
    perf on a child: ``perf record -g -- .venv/bin/python benches/historical.py child
    --peer banquet --size 1Mx10k`` (the ``child`` subcommand runs one timed retrieval)."""
    import threading

    import banquet.historical as H
    import banquet.offline.join as J
    from banquet.offline.file import FileOfflineStore, Located

    missing = []
    lock = threading.Lock()

    def timed(label, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with lock:
                    timers[label] = timers.get(label, 0.0) + time.perf_counter() - t

        return wrapper

    def hook(owners, attr, label):
        found = [o for o in owners if hasattr(o, attr)]
        if not found:
            missing.append(attr)
            return
        w = timed(label, getattr(found[0], attr))
        for o in found:  # the same wrapper everywhere the function is bound
            setattr(o, attr, w)

    hook([H.HistoricalJob], "__init__", "init: entity_df checks (HistoricalJob)")
    hook([H.HistoricalJob], "_join_views", "TOTAL views")
    hook([H.HistoricalJob], "_assemble", "run: assembling the output table")
    hook([J, H], "join_two_pass", "TOTAL view: two-pass")
    hook([J, H], "join_view", "view: one-pass join (join_view)")
    hook([FileOfflineStore], "open", "view: open dataset (list files, read footers)")
    hook([J], "_winners", "view: as-of join (view_rows + asof_join kernel)")
    if hasattr(Located, "__init__"):
        real_init = Located.__init__

        def located_init(self, reader, take, *a, **k):
            real_init(self, reader, timed("view: pass 2, take of the winners' features", take))

        Located.__init__ = located_init
    if missing:
        timers["missing hooks: " + ", ".join(missing)] = 0.0


def peer_polars(d: Path, profile: dict | None):
    """As the issue writes it: read, semi-join on the entity keys, sort by
    ``(event_timestamp, created)``, ``join_asof(by=key, strategy="backward", tolerance=ttl)``.
    No de-duplication pass: a backward search takes the last of the rows with an equal
    timestamp, which after the sort is the one with the largest ``created``."""
    from datetime import timedelta

    import polars as pl

    def run():
        entity = pl.read_parquet(d / "entity.parquet").with_row_index("_row")
        lo, hi = entity["event_timestamp"].min(), entity["event_timestamp"].max()
        keys = entity.lazy().select("user_id").unique()
        out = entity.lazy().sort("event_timestamp")
        for _, fname, ttl_days, feats in VIEWS:
            ttl = timedelta(days=ttl_days)
            features = (
                pl.scan_parquet(d / fname)
                .select("user_id", "event_timestamp", "created", *(f for f, _ in feats))
                .filter(pl.col("event_timestamp").is_between(lo - ttl, hi))
                .join(keys, on="user_id", how="semi")
                .sort("event_timestamp", "created")
                .drop("created")
            )
            out = out.join_asof(
                features,
                on="event_timestamp",
                by="user_id",
                strategy="backward",
                tolerance=ttl,
                check_sortedness=False,
            )
        return out.sort("_row").drop("_row").collect().to_arrow()

    return run, f"polars {pl.__version__}"


def peer_duckdb(d: Path, profile: dict | None):
    """As the issue writes it: ``ASOF LEFT JOIN`` on the key and a ``{ts, created}`` struct
    (structs compare field by field: the latest timestamp, then the latest created; the entity
    side probes with ``created = infinity``), the feature scan filtered by
    ``user_id IN (SELECT user_id FROM e)`` and the entity rows' time range."""
    import duckdb

    _preimport("zoneinfo", "sysconfig")
    con = duckdb.connect()

    def run():
        ent = f"read_parquet('{d / 'entity.parquet'}', file_row_number = true)"
        lo, hi = con.sql(
            f"SELECT min(event_timestamp), max(event_timestamp) FROM {ent}"
        ).fetchall()[0]
        ctes, selects, joins = [], [], []
        for i, (_, fname, ttl_days, feats) in enumerate(VIEWS):
            cols = ", ".join(f for f, _ in feats)
            ctes.append(
                f"f{i} AS (SELECT user_id, event_timestamp AS ts, "
                f"{{'ts': event_timestamp, 'created': created}} AS ord, {cols} "
                f"FROM read_parquet('{d / fname}') "
                f"WHERE event_timestamp BETWEEN TIMESTAMPTZ '{lo.isoformat()}' - INTERVAL {ttl_days} DAY "
                f"AND TIMESTAMPTZ '{hi.isoformat()}' "
                "AND user_id IN (SELECT user_id FROM e))"
            )
            # The ttl: the ASOF match is the latest row at or before the entity time; if even
            # that one is older than ttl, nothing matches. (Written into the ON clause instead,
            # DuckDB 2.0 plans a nested-loop join: 64 s instead of 0.6 s at 100k rows.)
            fresh = f"f{i}.ts >= e.event_timestamp - INTERVAL {ttl_days} DAY"
            selects += [f"CASE WHEN {fresh} THEN f{i}.{f} END AS {f}" for f, _ in feats]
            joins.append(f"ASOF LEFT JOIN f{i} ON e.user_id = f{i}.user_id AND e.ord >= f{i}.ord")
        sql = (
            "WITH e AS (SELECT user_id, event_timestamp, file_row_number, "
            "{'ts': event_timestamp, 'created': TIMESTAMPTZ 'infinity'} AS ord "
            f"FROM {ent}), "
            + ", ".join(ctes)
            + f" SELECT e.user_id, e.event_timestamp, {', '.join(selects)} FROM e "
            + " ".join(joins)
            + " ORDER BY e.file_row_number"
        )
        return con.sql(sql).to_arrow_table()

    return run, f"duckdb {duckdb.__version__}"


def peer_pandas(d: Path, profile: dict | None):
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    _preimport("pyarrow.dataset", "pyarrow.pandas_compat", "numpy.rec", "concurrent.futures")
    schema = pa.schema(
        [("user_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
        + [
            (f, getattr(pa, t)() if t != "string" else pa.string())
            for _, _, _, feats in VIEWS
            for f, t in feats
        ]
    )

    def run():
        entity = pd.read_parquet(d / "entity.parquet")
        entity["_row"] = np.arange(len(entity))
        lo, hi = entity["event_timestamp"].min(), entity["event_timestamp"].max()
        keys = entity["user_id"].unique()
        out = entity.sort_values("event_timestamp", kind="stable")
        for _, fname, ttl_days, feats in VIEWS:
            ttl = pd.Timedelta(days=ttl_days)
            f = pd.read_parquet(
                d / fname,
                columns=["user_id", "event_timestamp", "created", *(n for n, _ in feats)],
                filters=[("event_timestamp", ">=", lo - ttl), ("event_timestamp", "<=", hi)],
            )
            f = f[f["user_id"].isin(keys)]
            f = f.sort_values(["event_timestamp", "created"]).drop_duplicates(
                ["user_id", "event_timestamp"], keep="last"
            )
            out = pd.merge_asof(
                out,
                f.drop(columns="created"),
                on="event_timestamp",
                by="user_id",
                direction="backward",
                tolerance=ttl,
                allow_exact_matches=True,
            )
        out = out.sort_values("_row").drop(columns="_row")
        # ints that met a miss became float64 with NaN; the schema turns them back (NaN -> null)
        return pa.Table.from_pandas(out, schema=schema, preserve_index=False)

    return run, f"pandas {pd.__version__}"


def peer_feast(d: Path, profile: dict | None):
    import feast
    import numpy as np
    import pandas as pd
    from feast import FeatureStore

    _preimport(
        "feast.infra.offline_stores.duckdb",
        "ibis.backends.duckdb",
        "duckdb.func",
        "sqlglot.generators",
        "sqlglot.transforms",
        "feast.table_format",
        "pyarrow_hotfix",
        "numpy.rec",
        "pyarrow.dataset",
        "pyarrow.pandas_compat",
    )
    store = FeatureStore(repo_path=str(repo_dir(d.name, "feast")))
    store.list_feature_views()  # load the registry outside the timing

    def run():
        entity = pd.read_parquet(d / "entity.parquet")
        entity["_row"] = np.arange(len(entity))  # Feast does not promise input order
        out = store.get_historical_features(entity_df=entity, features=FEATURE_REFS).to_arrow()
        return out.sort_by("_row").drop_columns(["_row"])

    return run, f"feast {feast.__version__} (duckdb offline store)"


PEER_FNS = {
    "banquet": peer_banquet,
    "polars": peer_polars,
    "duckdb": peer_duckdb,
    "pandas": peer_pandas,
    "feast": peer_feast,
}


# --- the child ---------------------------------------------------------------------------------


def canonical(table):
    """The output's user_id, event_timestamp and features, in the declared types."""
    import pyarrow as pa

    types = {"user_id": pa.int64(), "event_timestamp": pa.timestamp("us", tz="UTC")}
    for _, _, _, feats in VIEWS:
        for f, t in feats:
            types[f] = getattr(pa, t)() if t != "string" else pa.string()
    cols = []
    for name, typ in types.items():
        col = table.column(name)
        if col.type != typ:
            col = col.cast(typ)
        cols.append(col.combine_chunks())
    return pa.table(cols, names=list(types))


def checksum(table) -> str:
    """A digest of the values and validity of every column (independent of chunking)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    h = hashlib.sha256()
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        h.update(name.encode())
        h.update(
            np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=np.uint8).tobytes()
        )
        if pa.types.is_string(col.type):
            filled = pc.fill_null(col, "").cast(pa.large_string())
            offsets = np.frombuffer(filled.buffers()[1], dtype=np.int64)
            offsets = offsets[filled.offset : filled.offset + len(filled) + 1]
            h.update(np.diff(offsets).tobytes())
            h.update(filled.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]])
        else:
            if pa.types.is_timestamp(col.type):
                col = col.cast(pa.int64())
            filled = pc.fill_null(col, pa.scalar(0, col.type))
            h.update(filled.to_numpy().tobytes())
    return h.hexdigest()[:16]


def child_main(args) -> None:
    import pyarrow.parquet as pq

    global MEMORY_LIMIT
    MEMORY_LIMIT = args.memory_limit
    d = size_dir(args.size)
    profile: dict | None = {} if args.profile else None
    run, version = PEER_FNS[args.peer](d, profile)
    gc.collect()
    rss_start = C.rss_mb("VmRSS")
    before = set(sys.modules)
    t0, c0 = time.perf_counter(), time.process_time()
    out = run()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0  # all threads of the process: load-independent-ish
    imported = sorted(m for m in set(sys.modules) - before if "." not in m or m.count(".") < 2)
    peak = C.rss_mb("VmHWM")  # before writing the output, which is not part of the benchmark
    rows = out.num_rows
    canon = canonical(out)
    del out
    result = {
        "peer": args.peer,
        "version": version,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_mb": peak,
        "rss_start_mb": rss_start,
        "rows": rows,
        "checksum": checksum(canon),
        "threads": os.cpu_count(),
        "imported_during_run": imported,
        "config_note": "; ".join(n for n in BANQUET_NOTES if n),
    }
    if profile is not None:
        result["profile"] = profile
    if args.out:
        pq.write_table(canon, args.out)
    C.report(result)


# --- verification -------------------------------------------------------------------------------


def oracle(d: Path):
    """The expected output, from a plain numpy implementation of the rule (no engine)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    entity = pq.read_table(d / "entity.parquet")
    eu = entity["user_id"].to_numpy()
    et = entity["event_timestamp"].cast(pa.int64()).to_numpy()
    cols = {"user_id": entity["user_id"], "event_timestamp": entity["event_timestamp"]}
    for _, fname, ttl_days, feats in VIEWS:
        f = pq.read_table(d / fname)
        fu = f["user_id"].to_numpy()
        ft = f["event_timestamp"].cast(pa.int64()).to_numpy()
        fc = f["created"].cast(pa.int64()).to_numpy()
        # rank all timestamps so (user_id, ts) packs into one int64 that sorts like the pair
        uniq, inv = np.unique(np.concatenate([ft, et]), return_inverse=True)
        r = len(uniq)
        fkey = fu * r + inv[: len(ft)]
        ekey = eu * r + inv[len(ft) :]
        order = np.lexsort((fc, fkey))  # by (user_id, ts), then created
        pos = np.searchsorted(fkey[order], ekey, side="right") - 1  # last row <= (user, ts)
        cand = order[np.maximum(pos, 0)]
        ok = (pos >= 0) & (fu[cand] == eu) & (ft[cand] >= et - ttl_days * DAY_US)
        idx = pa.array(np.where(ok, cand, 0), mask=~ok)
        for name, _ in feats:
            cols[name] = f[name].take(idx)
    return canonical(pa.table(cols))


def cached_oracle(d: Path):
    """The oracle's table, computed once per generated data set (the file goes with the data
    when it is regenerated): at 10M entity rows it takes minutes on a busy machine."""
    import pyarrow.parquet as pq

    path = d / "oracle.parquet"
    if path.exists():
        return pq.read_table(path)
    table = oracle(d)
    pq.write_table(table, path)
    return table


def compare(expected, got, label: str) -> list[str]:
    """Row-for-row differences between two canonical tables (empty list when equal)."""
    import pyarrow.compute as pc

    problems = []
    if got.num_rows != expected.num_rows:
        return [f"{label}: {got.num_rows} rows, expected {expected.num_rows}"]
    for name in expected.column_names:
        a, b = expected.column(name).combine_chunks(), got.column(name).combine_chunks()
        if a.equals(b):
            continue
        null_diff = pc.xor(a.is_null(), b.is_null())
        val_diff = pc.fill_null(pc.not_equal(a, b), False)
        diff = pc.or_(null_diff, val_diff)
        n = pc.sum(diff).as_py() or 0
        if n == 0:
            continue
        rows = pc.indices_nonzero(diff).to_pylist()[:3]
        ex = "; ".join(
            f"row {i} (user {expected['user_id'][i].as_py()}, ts {expected['event_timestamp'][i]}): "
            f"expected {a[i].as_py()!r}, got {b[i].as_py()!r}"
            for i in rows
        )
        problems.append(f"{label}: column {name}: {n} rows differ, e.g. {ex}")
    return problems


# --- the parent -------------------------------------------------------------------------------


def python_for(peer: str) -> Path:
    return C.BANQUET_PY if peer == "banquet" else C.PEERS_PY


def run_size(size: str, peers: list[str], args, info: dict) -> dict:

    d = ensure_data(size)
    out_dir, log_dir = d / "out", d / "logs"
    out_dir.mkdir(exist_ok=True)
    log_dir.mkdir(exist_ok=True)
    me = str(Path(__file__).resolve())
    failures: dict[str, str] = {}
    for peer in ("banquet", "feast"):
        if peer not in peers:
            continue
        if not python_for(peer).exists():
            failures[peer] = f"{python_for(peer)} missing (see benches/requirements.txt)"
            continue
        if not (repo_dir(size, peer) / "applied").exists():
            r = C.run_child(
                [str(python_for(peer)), me, "setup", "--peer", peer, "--size", size],
                args.timeout,
                log_dir / f"setup_{peer}.log",
            )
            if not r.ok:
                failures[peer] = f"setup (apply) failed: {r.error}"
    for peer in peers:
        if (peer, size) in args.skip:
            failures[peer] = f"skipped at this size (--skip): {args.skip[peer, size]}"
    runs: dict[str, list[dict]] = {p: [] for p in peers}
    for rep in range(args.repeat_at.get(size, args.repeat)):
        for peer in peers:
            if peer in failures:
                continue
            if not python_for(peer).exists():
                failures[peer] = f"{python_for(peer)} missing (see benches/requirements.txt)"
                continue
            if not args.no_wait:
                C.wait_until_quiet(args.wait_max)
            busy_before = C.busy_processes()
            cmd = [
                str(python_for(peer)),
                me,
                "child",
                "--peer",
                peer,
                "--size",
                size,
                "--out",
                str(out_dir / f"{peer}.parquet"),
            ]
            if args.profile and peer == "banquet":
                cmd.append("--profile")
            if args.memory_limit and peer == "banquet":
                cmd += ["--memory-limit", args.memory_limit]
            for f in (out_dir / f"{peer}.parquet",):
                f.unlink(missing_ok=True)
            r = C.run_child(cmd, args.timeout, log_dir / f"{peer}.log", rss_cap_mb=args.rss_cap_mb)
            busy = bool(busy_before or C.busy_processes())
            if not r.ok:
                failures[peer] = r.error
                print(f"  {peer:8} FAILED: {r.error}", flush=True)
                continue
            res = dict(r.result, child_maxrss_mb=r.maxrss_mb, busy=busy)
            runs[peer].append(res)
            print(
                f"  {peer:8} run {rep + 1}: {res['wall_s']:7.2f}s  peak {res['peak_mb']:7.0f} MB"
                + ("  (compiler was running)" if busy else ""),
                flush=True,
            )
            if res.get("config_note") and rep == 0:
                print(f"  {peer:8} config: {res['config_note']}", flush=True)
            if res.get("imported_during_run"):
                print(
                    f"  {peer:8} note: imported during the timed run: {res['imported_during_run'][:8]}"
                )
            if rep == 0:  # verify the first output of every peer
                res["verify"] = _verify(d, peer, out_dir, args)
    return {"size": size, "runs": runs, "failures": failures}


_oracle_cache: dict = {}


def _verify(d: Path, peer: str, out_dir: Path, args) -> list[str]:
    import pyarrow.parquet as pq

    got = pq.read_table(out_dir / f"{peer}.parquet")
    ref_path = out_dir / "banquet.parquet"
    problems: list[str] = []
    if peer == "banquet":
        if d not in _oracle_cache:
            _oracle_cache.clear()
            _oracle_cache[d] = cached_oracle(d)
        problems = compare(_oracle_cache[d], got, "banquet vs numpy oracle")
    elif ref_path.exists():
        problems = compare(pq.read_table(ref_path), got, f"{peer} vs banquet")
    else:
        if d not in _oracle_cache:
            _oracle_cache.clear()
            _oracle_cache[d] = cached_oracle(d)
        problems = compare(_oracle_cache[d], got, f"{peer} vs numpy oracle (banquet has no output)")
    for p in problems:
        print(f"  !!! MISMATCH {p}", flush=True)
    if not problems:
        against = "banquet" if peer != "banquet" and ref_path.exists() else "the numpy oracle"
        print(f"  {peer:8} output verified: equal to {against}, row for row", flush=True)
    return problems


def summarize(res: dict, peers: list[str]) -> str:
    runs, failures = res["runs"], res["failures"]

    def best(peer):
        rs = runs.get(peer) or []
        return min(rs, key=lambda r: r["wall_s"]) if rs else None

    base = best("banquet")
    rows = []
    for peer in peers:
        b = best(peer)
        if b is None:
            rows.append([peer, "-", "failed", "-", "-", "-", "-", "-", "no run (see below)"])
            continue
        verify = runs[peer][0].get("verify", ["not verified"])
        ok = "yes" if not verify else "**NO** (see below)"
        ratio = f"{b['wall_s'] / base['wall_s']:.2f}" if base else "-"
        peak = max(r["peak_mb"] for r in runs[peer])
        note = " *" if b["busy"] else ""
        every = " / ".join(f"{r['wall_s']:.2f}" for r in runs[peer])
        rows.append(
            [
                peer,
                b["version"].split(" (")[0],
                f"{b['wall_s']:.2f}{note}",
                every,
                f"{b['cpu_s']:.2f}" if "cpu_s" in b else "-",
                f"{peak:.0f}",
                f"{b['rss_start_mb']:.0f}",
                ratio,
                ok,
            ]
        )
    table = C.markdown_table(
        [
            "peer",
            "version",
            "wall s (best)",
            "all runs s",
            "CPU s (best run)",
            "peak RSS MB",
            "RSS before MB",
            "time vs banquet",
            "correct",
        ],
        rows,
        right={2, 3, 4, 5, 6, 7},
    )
    notes = [f"- {p}: {why}" for p, why in failures.items() if p in peers]
    line = target_line(res, peers)
    if line:
        notes.insert(0, f"- {line}")
    notes += [f"- {p}: {v}" for p in peers for v in (runs.get(p) or [{}])[0].get("verify", [])]
    if any(best(p) and best(p)["busy"] for p in peers):
        notes.append(
            "- * a compiler (cargo/rustc/maturin) was running during this, the fastest, run"
        )
    return table + ("\n\n" + "\n".join(notes) if notes else "")


def _best(res: dict, peer: str) -> dict | None:
    rs = res["runs"].get(peer) or []
    return min(rs, key=lambda r: r["wall_s"]) if rs else None


def target_numbers(res: dict, peers: list[str]) -> dict | None:
    """banquet against the fastest and the leanest peer that ran (the issue's targets:
    at least 2x faster than the fastest, peak RSS at most the lowest peer's)."""
    base = _best(res, "banquet")
    others = [(p, _best(res, p)) for p in peers if p != "banquet" and _best(res, p)]
    if base is None or not others:
        return None
    fast_p, fast = min(others, key=lambda pb: pb[1]["wall_s"])
    lean_p, lean = min(
        ((p, max(r["peak_mb"] for r in res["runs"][p])) for p, _ in others), key=lambda x: x[1]
    )
    peak = max(r["peak_mb"] for r in res["runs"]["banquet"])
    return {
        "banquet_s": base["wall_s"],
        "fastest_peer": fast_p,
        "fastest_s": fast["wall_s"],
        "speedup": fast["wall_s"] / base["wall_s"],
        "banquet_peak_mb": peak,
        "leanest_peer": lean_p,
        "leanest_peak_mb": lean,
    }


def target_line(res: dict, peers: list[str]) -> str:
    t = target_numbers(res, peers)
    if t is None:
        return ""
    speed_ok = "met" if t["speedup"] >= 2 else "NOT met"
    mem_ok = "met" if t["banquet_peak_mb"] <= t["leanest_peak_mb"] else "NOT met"
    return (
        f"banquet {t['banquet_s']:.2f} s vs the fastest peer ({t['fastest_peer']}, "
        f"{t['fastest_s']:.2f} s): {t['speedup']:.2f}x (target >= 2x: {speed_ok}); peak RSS "
        f"{t['banquet_peak_mb']:.0f} MB vs the lowest peer's ({t['leanest_peer']}, "
        f"{t['leanest_peak_mb']:.0f} MB) (target <=: {mem_ok})"
    )


def overview(results: list[dict], peers: list[str]) -> str:
    """One line per size: banquet against the fastest and the leanest peer."""
    rows = []
    for res in results:
        t = target_numbers(res, peers)
        if t is None:
            rows.append([res["size"], "-", "-", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                res["size"],
                f"{t['banquet_s']:.2f}",
                f"{t['fastest_peer']} {t['fastest_s']:.2f}",
                f"{t['speedup']:.2f}x" + ("" if t["speedup"] >= 2 else " (< 2x)"),
                f"{t['banquet_peak_mb']:.0f}",
                f"{t['leanest_peer']} {t['leanest_peak_mb']:.0f}",
                "yes" if t["banquet_peak_mb"] <= t["leanest_peak_mb"] else "no",
            ]
        )
    return C.markdown_table(
        [
            "size (feature rows/view x entity rows)",
            "banquet s",
            "fastest peer s",
            "peer s / banquet s",
            "banquet peak MB",
            "lowest peer peak MB",
            "banquet <= lowest",
        ],
        rows,
        right={1, 2, 3, 4, 5},
    )


def profile_lines(res: dict) -> list[str]:
    """Banquet's time split from the fastest profiled run (``view:`` stages summed over the
    views, which run concurrently)."""
    rs = [r for r in res["runs"].get("banquet") or [] if "profile" in r]
    if not rs:
        return []
    p = min(rs, key=lambda r: r["wall_s"])
    prof, total = dict(p["profile"]), p["wall_s"]
    notes = [k for k in prof if k.startswith(("missing hooks", "note:"))]
    for k in notes:
        prof.pop(k)
    views = prof.pop("TOTAL views", 0.0)
    two_pass = prof.pop("TOTAL view: two-pass", 0.0)
    parts = {
        "entity Parquet read (pq.read_table, in the benchmark)": prof.pop(
            "entity parquet read", 0.0
        )
    }
    parts.update(prof)
    inner = sum(v for k, v in prof.items() if k.startswith("view:") and "one-pass" not in k)
    inner -= prof.get("view: open dataset (list files, read footers)", 0.0)
    parts["view: pass 1 scan (keys, times, locators) + glue"] = two_pass - inner
    parts["views: wall of all views (the views' threads)"] = views
    parts["rest (request resolution, outside the stages above)"] = total - sum(
        v for k, v in parts.items() if not k.startswith("view:")
    )
    lines = [
        f"banquet time split, {SIZE_LABEL[res['size']]}: total {total:.3f}s, peak "
        f"{p['peak_mb']:.0f} MB (wall-clock timers around banquet's functions; 'view:' "
        "stages summed over the views, which run on threads at once)"
    ]
    for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
        if abs(v) >= 0.0005:
            lines.append(f"  {v:7.3f}s {100 * v / total:5.1f}%  {k}")
    lines += [f"  ({n})" for n in notes]
    return lines


def print_profile(res: dict) -> None:
    lines = profile_lines(res)
    if lines:
        print("\n" + "\n".join("  " + ln for ln in lines), flush=True)


def parent_main(args) -> None:
    sizes = ["quick"] if args.quick else [s.strip() for s in args.sizes.split(",") if s.strip()]
    args.repeat_at = _size_map(args.repeat_at, "--repeat-at", int)
    skip: dict[tuple[str, str], str] = {}
    for item in args.skip:
        what, _, why = item.partition(":")
        peer, _, size = what.partition("@")
        if peer not in PEER_FNS or size not in SIZES:
            sys.exit(f"--skip {item!r}: expected PEER@SIZE[:reason]")
        skip[peer, size] = why or "no reason given"
    args.skip = skip
    for s in sizes:
        if s not in SIZES:
            sys.exit(f"unknown size {s!r}; choose from {', '.join(SIZES)}")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for p in peers:
        if p not in PEER_FNS:
            sys.exit(f"unknown peer {p!r}; choose from {', '.join(PEERS)}")
    if "banquet" in peers:  # banquet first: it is the reference the others are checked against
        peers = ["banquet"] + [p for p in peers if p != "banquet"]
    info = C.machine_info()
    print(f"machine: {C.machine_line(info)}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"commit: {C.git_commit()}")
    results = []
    for size in sizes:
        print(f"\n== {SIZE_LABEL[size]} ==", flush=True)
        res = run_size(size, peers, args, info)
        results.append(res)
        print()
        print(summarize(res, peers), flush=True)
        print_profile(res)
    print("\n\n## results (markdown)\n")
    print(
        f"Date: {info['date']}. Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM.\n"
    )
    if len(results) > 1:
        print(overview(results, peers) + "\n")
    for res in results:
        print(f"**{SIZE_LABEL[res['size']]}**\n")
        print(summarize(res, peers))
        print()
        lines = profile_lines(res)
        if lines:
            print("```\n" + "\n".join(lines) + "\n```\n")
    bad = [p for res in results for p, rs in res["runs"].items() if rs and rs[0].get("verify")]
    if bad:
        print(f"!!! OUTPUT MISMATCHES: {sorted(set(bad))}")
        sys.exit(2)


def _size_map(items: list[str], flag: str, conv) -> dict:
    out = {}
    for item in items:
        size, _, value = item.partition("=")
        if size not in SIZES or not value:
            sys.exit(f"{flag} {item!r}: expected SIZE=VALUE with SIZE one of {', '.join(SIZES)}")
        out[size] = conv(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd")
    ch = sub.add_parser("child", help="(internal) run one peer once")
    ch.add_argument("--peer", required=True, choices=PEERS)
    ch.add_argument("--size", required=True, choices=list(SIZES))
    ch.add_argument("--out")
    ch.add_argument("--profile", action="store_true")
    ch.add_argument("--memory-limit")
    st = sub.add_parser("setup", help="(internal) write and apply a feature repo")
    st.add_argument("--peer", required=True, choices=["banquet", "feast"])
    st.add_argument("--size", required=True, choices=list(SIZES))
    ap.add_argument(
        "--sizes",
        default=",".join(ISSUE_SIZES),
        help="comma list of: " + ", ".join(SIZES) + " (default: the issue's five)",
    )
    ap.add_argument("--quick", action="store_true", help="only the 100k smoke size")
    ap.add_argument(
        "--peers",
        default=",".join(DEFAULT_PEERS),
        help=f"comma list of {', '.join(PEERS)} (default: {', '.join(DEFAULT_PEERS)})",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per peer; the fastest is reported")
    ap.add_argument(
        "--repeat-at",
        action="append",
        default=[],
        metavar="SIZE=N",
        help="runs per peer at one size (e.g. 10Mx10M=1), overrides --repeat there",
    )
    ap.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="PEER@SIZE[:reason]",
        help="leave a peer out at one size; the reason is printed in the table's notes",
    )
    ap.add_argument(
        "--memory-limit",
        help="banquet's offline_store.memory_limit (e.g. 2GiB); ignored, and said so, by a "
        "banquet whose config does not know the key",
    )
    ap.add_argument(
        "--rss-cap-mb",
        type=float,
        default=16_000,
        help="kill a peer whose resident memory passes this (MB; default 16000), so one peer "
        "cannot take the shared machine down; reported as a failure",
    )
    ap.add_argument("--timeout", type=float, default=600, help="seconds per peer run (default 600)")
    ap.add_argument("--profile", action="store_true", help="time banquet's stages")
    ap.add_argument("--no-wait", action="store_true", help="don't wait for running compilers")
    ap.add_argument(
        "--wait-max",
        type=float,
        default=600,
        help="max seconds to wait for compilers before each run",
    )
    args = ap.parse_args()
    if args.cmd == "child":
        child_main(args)
    elif args.cmd == "setup":
        setup_repo(args.size, args.peer)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
