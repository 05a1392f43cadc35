"""A training set and a materialization larger than the memory limit (issue #14).

Two feature views of 50M rows each (the historical.py views: 5 features, ttl 7 and 30 days,
90 days of history, 5% repeated ``(user_id, event_timestamp)`` pairs decided by ``created``),
one user id per 10 feature rows (5M keys), and 5M entity rows. Each view is a directory of
Parquet files, one row group of 1M rows per file (``part-00000.parquet`` ...), generated once
in chunks (numpy, seeded) so the generation itself needs ~1 GB.

Steps, each banquet run in a fresh child process that reports its wall time and peak RSS
(``VmHWM``):

- ``join``: ``get_historical_features(entity, 10 features).to_parquet(out)`` under
  ``offline_store.memory_limit`` (``--memory-limit``, default 2GiB).
- ``reference``: the same without the limit (``--reference-limit``, default 64GiB), the
  in-memory run; its Parquet file is kept with the commit it came from.
- ``compare``: the two Parquet results, row for row and value for value (streamed in slices,
  nothing held whole).
- ``materialize``: both views over their whole history into a fresh SQLite online store
  under the limit; the number of stored keys per view must equal the view's distinct keys.

    .venv/bin/python benches/big_join.py gen                 # generate the data (once)
    .venv/bin/python benches/big_join.py                     # all four steps
    .venv/bin/python benches/big_join.py --steps reference   # only the in-memory reference
    .venv/bin/python benches/big_join.py --feature-rows 2000000 --entity-rows 200000  # small
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import historical as H  # noqa: E402

GEN_VERSION = 1  # bump when the generated data changes
CHUNK = 1_000_000  # rows per file (one row group each)
PROJECT = "bench_big"
STEPS = ["join", "reference", "compare", "materialize"]


def data_dir(n_feat: int, n_ent: int) -> Path:
    return C.DATA / f"big-{H._n(n_feat)}x{H._n(n_ent)}"


# --- data --------------------------------------------------------------------------------------


def ensure_data(n_feat: int, n_ent: int) -> dict:
    """Generate the data unless a matching manifest is there; returns the manifest."""
    d = data_dir(n_feat, n_ent)
    want = {"gen": GEN_VERSION, "seed": H.SEED, "feature_rows": n_feat, "entity_rows": n_ent}
    manifest = d / "manifest.json"
    if manifest.exists():
        have = json.loads(manifest.read_text())
        if {k: have.get(k) for k in want} == want:
            return have
    print(
        f"generating {n_feat:,} feature rows x 2 views, {n_ent:,} entity rows into {d}", flush=True
    )
    t = time.perf_counter()
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    distinct = _generate(d, n_feat, n_ent, n_feat // 10)
    have = dict(want, keys=n_feat // 10, distinct_keys=distinct)
    manifest.write_text(json.dumps(have))
    print(f"generated in {time.perf_counter() - t:.0f}s", flush=True)
    return have


def _generate(d: Path, n_feat: int, n_ent: int, n_keys: int) -> dict[str, int]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([H.SEED, 14, n_feat, n_ent])
    ts_type = pa.timestamp("us", tz="UTC")
    span_s = H.SPAN_DAYS * 86_400
    countries = np.array(H.COUNTRIES, dtype=object)
    picked: list[tuple[np.ndarray, np.ndarray]] = []  # (user_id, ts) of chunk 0, per view
    distinct: dict[str, int] = {}
    for view, fname, _, feats in H.VIEWS:
        out = d / fname  # a directory of files, named like the single file of historical.py
        out.mkdir()
        seen = np.zeros(n_keys, dtype=bool)
        for ci, start in enumerate(range(0, n_feat, CHUNK)):
            n = min(CHUNK, n_feat - start)
            n_dup = n // 20  # 5% repeat a (user_id, ts) of the same chunk with another created
            uid = rng.integers(0, n_keys, n - n_dup, dtype=np.int64)
            ts = H.T0_US + rng.integers(0, span_s, n - n_dup, dtype=np.int64) * H.US
            src = rng.integers(0, n - n_dup, n_dup)
            perm = rng.permutation(n)
            uid = np.concatenate([uid, uid[src]])[perm]
            ts = np.concatenate([ts, ts[src]])[perm]
            # created: ts + an offset unique to the row's global index (multiplication by an
            # odd number is a bijection mod 2^32), so no two rows tie on (user_id, ts, created)
            # and the offsets do not follow the file order.
            row = np.arange(start, start + n, dtype=np.int64)
            created = ts + 1 + (row * 2_654_435_761) % (1 << 32)
            seen[uid] = True
            if ci == 0:
                picked.append((uid, ts))
            cols = {
                "user_id": pa.array(uid),
                "event_timestamp": pa.array(ts, ts_type),
                "created": pa.array(created, ts_type),
            }
            for fi, (name, typ) in enumerate(feats):
                mask = rng.random(n) < 0.01 if fi in (0, 3) else None  # some stored nulls
                if typ == "float64":
                    vals = rng.normal(100.0, 30.0, n)
                elif typ == "float32":
                    vals = rng.random(n, dtype=np.float32)
                elif typ == "int64":
                    vals = rng.integers(0, 10_000, n, dtype=np.int64)
                else:
                    vals = countries[rng.integers(0, len(countries), n, dtype=np.int32)]
                cols[name] = pa.array(
                    vals, type=getattr(pa, typ)() if typ != "string" else pa.string(), mask=mask
                )
            pq.write_table(pa.table(cols), out / f"part-{ci:05d}.parquet", row_group_size=n)
            del cols
            if ci % 10 == 9:
                print(f"  {view}: {start + n:,} rows", flush=True)
        distinct[view] = int(seen.sum())

    # Entity rows as in historical.py: 10% of ids without feature rows, times after the first
    # week, 1% each on the edges (equal to a feature ts, exactly ttl after, ttl + 1 us after).
    uid = rng.integers(0, int(n_keys * 1.1), n_ent, dtype=np.int64)
    ts = H.T0_US + 7 * H.DAY_US + rng.integers(0, span_s - 7 * 86_400, n_ent, dtype=np.int64) * H.US
    a_ttl, b_ttl = H.VIEWS[0][2] * H.DAY_US, H.VIEWS[1][2] * H.DAY_US
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
    return distinct


def repo_dir(d: Path) -> Path:
    return d / "banquet_repo"


def ensure_repo(d: Path) -> None:
    """The feature repo (file offline store, SQLite online store), applied once."""
    repo = repo_dir(d)
    if (repo / "applied").exists():
        return
    C.write_and_apply_repo(repo, "banquet", PROJECT, "file", H._defs("banquet", d))
    (repo / "applied").write_text("ok\n")


# --- children ----------------------------------------------------------------------------------


def child_join(args) -> None:
    import pyarrow.parquet as pq

    d = Path(args.data)
    store, note = H.open_banquet_store(repo_dir(d), args.memory_limit)
    store.catalog()
    store.offline_store  # noqa: B018 (opened on first use)
    gc.collect()
    rss_start = C.rss_mb("VmRSS")
    t0 = time.perf_counter()
    entity = pq.read_table(d / "entity.parquet")
    store.get_historical_features(entity, H.FEATURE_REFS).to_parquet(args.out)
    wall = time.perf_counter() - t0
    C.report(
        {
            "wall_s": wall,
            "peak_mb": C.rss_mb("VmHWM"),
            "rss_start_mb": rss_start,
            "rows": pq.ParquetFile(args.out).metadata.num_rows,
            "config": note,
        }
    )


def child_materialize(args) -> None:
    from banquet.online.sqlite import table_name

    d = Path(args.data)
    db = repo_dir(d) / "data" / "online_store.db"
    for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        f.unlink(missing_ok=True)  # a fresh online store: every key is written by this run
    store, note = H.open_banquet_store(repo_dir(d), args.memory_limit)
    store.catalog()
    gc.collect()
    rss_start = C.rss_mb("VmRSS")
    t0_dt = datetime.fromtimestamp(H.T0_US / H.US, timezone.utc)
    start, end = t0_dt - timedelta(days=1), t0_dt + timedelta(days=H.SPAN_DAYS + 1)
    t0 = time.perf_counter()
    store.materialize(start, end)
    wall = time.perf_counter() - t0
    peak = C.rss_mb("VmHWM")
    # Through the store's own SQLite, never Python's sqlite3: two SQLite libraries in one
    # process do not see each other's POSIX locks, so sqlite3 would take the WAL index for
    # its own and reset it under banquet's background checkpoint (that was the SIGBUS).
    counts = {
        view: store.online_store.query(f"SELECT count(*) FROM {table_name(PROJECT, view)}")[0][0]
        for view, _, _, _ in H.VIEWS
    }
    C.report(
        {"wall_s": wall, "peak_mb": peak, "rss_start_mb": rss_start, "keys": counts, "config": note}
    )


# --- compare -----------------------------------------------------------------------------------


def compare_parquet(a: Path, b: Path, slice_rows: int = 1 << 18) -> list[str]:
    """Differences between two Parquet files, row for row (schema, row count, then every
    value and null in order); streamed, so neither file is held whole."""
    import pyarrow.parquet as pq

    fa, fb = pq.ParquetFile(a), pq.ParquetFile(b)
    sa, sb = fa.schema_arrow, fb.schema_arrow
    if not sa.equals(sb):
        return [f"schemas differ:\n  {a.name}: {sa}\n  {b.name}: {sb}"]
    na, nb = fa.metadata.num_rows, fb.metadata.num_rows
    if na != nb:
        return [f"{a.name} has {na} rows, {b.name} {nb}"]
    ia, ib = fa.iter_batches(batch_size=slice_rows), fb.iter_batches(batch_size=slice_rows)
    ba = bb = None
    pa_ = pb_ = 0  # position inside the current batch of each file
    row = 0
    while row < na:
        if ba is None or pa_ == ba.num_rows:
            ba, pa_ = next(ia), 0
        if bb is None or pb_ == bb.num_rows:
            bb, pb_ = next(ib), 0
        n = min(ba.num_rows - pa_, bb.num_rows - pb_)
        xa, xb = ba.slice(pa_, n), bb.slice(pb_, n)
        if not xa.equals(xb):
            problems = []
            for name in sa.names:
                ca, cb = xa.column(name), xb.column(name)
                if ca.equals(cb):
                    continue
                for i in range(n):
                    if ca[i].as_py() != cb[i].as_py() or ca[i].is_valid != cb[i].is_valid:
                        problems.append(
                            f"column {name}: first difference at row {row + i}: "
                            f"{ca[i].as_py()!r} vs {cb[i].as_py()!r}"
                        )
                        break
            return problems or [f"rows {row}..{row + n}: batches differ"]
        pa_, pb_, row = pa_ + n, pb_ + n, row + n
    return []


# --- the parent --------------------------------------------------------------------------------


def _run(kind: str, d: Path, limit: str, extra: list[str], args, log: Path) -> C.ChildRun:
    me = str(Path(__file__).resolve())
    if not args.no_wait:
        C.wait_until_quiet(args.wait_max)
    cmd = [str(C.BANQUET_PY), me, kind, "--data", str(d), "--memory-limit", limit, *extra]
    return C.run_child(cmd, args.timeout, log, rss_cap_mb=args.rss_cap_mb)


def _line(label: str, r: C.ChildRun) -> str:
    if not r.ok:
        return f"{label}: FAILED: {r.error} (child peak {r.maxrss_mb:.0f} MB)"
    res = r.result or {}
    return (
        f"{label}: {res['wall_s']:.1f} s, peak RSS {res['peak_mb']:.0f} MB "
        f"(RSS before {res['rss_start_mb']:.0f} MB; {res['config'] or 'no memory_limit'})"
    )


def parent_main(args) -> None:
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    for s in steps:
        if s not in STEPS:
            sys.exit(f"unknown step {s!r}; choose from {', '.join(STEPS)}")
    info = C.machine_info()
    print(f"machine: {C.machine_line(info)}")
    print(f"command: {' '.join(sys.argv)}")
    commit = C.git_commit()
    print(f"commit: {commit}", flush=True)
    man = ensure_data(args.feature_rows, args.entity_rows)
    d = data_dir(args.feature_rows, args.entity_rows)
    ensure_repo(d)
    out, logs = d / "out", d / "logs"
    out.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    limited, reference = out / "limited.parquet", out / "reference.parquet"
    print(
        f"data: {args.feature_rows:,} feature rows x 2 views ({man['keys']:,} keys), "
        f"{args.entity_rows:,} entity rows; memory_limit {args.memory_limit}",
        flush=True,
    )
    lines: list[str] = []
    failed = False

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    if "join" in steps:
        limited.unlink(missing_ok=True)
        r = _run(
            "child-join", d, args.memory_limit, ["--out", str(limited)], args, logs / "join.log"
        )
        say(_line(f"join under memory_limit {args.memory_limit}", r))
        failed |= not r.ok
        if r.ok and r.result["rows"] != args.entity_rows:
            say(f"!!! join: {r.result['rows']} output rows, expected {args.entity_rows}")
            failed = True
    if "reference" in steps:
        reference.unlink(missing_ok=True)
        r = _run(
            "child-join",
            d,
            args.reference_limit,
            ["--out", str(reference)],
            args,
            logs / "reference.log",
        )
        say(_line(f"reference (in memory, memory_limit {args.reference_limit})", r))
        failed |= not r.ok
        if r.ok:
            (out / "reference.json").write_text(json.dumps({"commit": commit, **r.result}))
    if "compare" in steps:
        if not (limited.exists() and reference.exists()):
            say("compare: skipped, a result is missing (run the join and reference steps)")
            failed = True
        else:
            ref = json.loads((out / "reference.json").read_text())
            t = time.perf_counter()
            problems = compare_parquet(reference, limited)
            took = time.perf_counter() - t
            if problems:
                failed = True
                say(f"!!! compare: the limited result differs from the reference: {problems[:3]}")
            else:
                say(
                    f"compare: the limited result equals the in-memory reference (made at "
                    f"{ref['commit']}), row for row, {args.entity_rows:,} rows x "
                    f"{len(H.FEATURES) + 2} columns ({took:.0f} s)"
                )
    if "materialize" in steps:
        r = _run("child-materialize", d, args.memory_limit, [], args, logs / "materialize.log")
        say(_line(f"materialize 2 views into SQLite under memory_limit {args.memory_limit}", r))
        failed |= not r.ok
        if r.ok:
            got, want = r.result["keys"], man["distinct_keys"]
            if got == want:
                say(f"materialize: stored keys per view equal the distinct keys: {got}")
            else:
                failed = True
                say(
                    f"!!! materialize: stored keys per view {got}, distinct keys in the data {want}"
                )
    print("\n## results\n")
    print(
        f"Date: {info['date']}. Machine: {info['nproc']} cores ({info['cpu']}), {info['ram']} RAM."
    )
    print(f"Commit: {commit}. Command: `{' '.join(sys.argv)}`\n")
    print("\n".join(f"- {ln}" for ln in lines))
    if failed:
        sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("gen", help="generate the data and apply the repo, nothing else")
    for kind in ("child-join", "child-materialize"):
        ch = sub.add_parser(kind, help="(internal) one banquet run")
        ch.add_argument("--data", required=True)
        ch.add_argument("--memory-limit")
        ch.add_argument("--out")
    ap.add_argument("--feature-rows", type=int, default=50_000_000, help="per view (default 50M)")
    ap.add_argument("--entity-rows", type=int, default=5_000_000, help="default 5M")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma list of {', '.join(STEPS)}")
    ap.add_argument("--memory-limit", default="2GiB", help="offline_store.memory_limit (2GiB)")
    ap.add_argument(
        "--reference-limit", default="64GiB", help="memory_limit of the in-memory reference run"
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per child (1800)")
    ap.add_argument("--rss-cap-mb", type=float, default=16_000, help="kill a child above this")
    ap.add_argument("--no-wait", action="store_true", help="don't wait for running compilers")
    ap.add_argument("--wait-max", type=float, default=600, help="max wait for compilers (s)")
    args = ap.parse_args()
    if args.cmd == "child-join":
        child_join(args)
    elif args.cmd == "child-materialize":
        child_materialize(args)
    elif args.cmd == "gen":
        ensure_data(args.feature_rows, args.entity_rows)
        ensure_repo(data_dir(args.feature_rows, args.entity_rows))
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
