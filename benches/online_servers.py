"""Online serving on server stores (Redis, Postgres), banquet against Feast 0.67, in one run,
on the same local servers (``make services``) and the same generated data as
``benches/online.py`` (two views x 10 features, one int64 key, N keys x R rows per view).

Per store and system, each step in its own subprocess (banquet in .venv, Feast in
benches/.venv-peers), in this order:

1. ``setup``: the system's own place is emptied (Redis: its own database number, FLUSHDB;
   Postgres: its own schema, dropped and re-created), then a fresh repo is applied.
2. ``materialize``: ``store.materialize(start, end, feature_views=[view])`` per view, timed
   around each call; throughput = keys written per second (N keys x 2 views / time).
   Redis memory: ``INFO memory`` ``used_memory`` is read before and after this step (the
   growth), and again before and after the system's database is emptied (``FLUSHDB SYNC``,
   after step 3: the memory freed). Bytes per stored feature value = freed / (N x 20
   values). ``used_memory`` covers the whole shared server, so other work on it shows up in
   the growth (seconds long); the flush takes milliseconds, so the freed figure is the one
   reported. ``MEMORY USAGE`` of 200 sampled keys is printed as a cross-check.
3. ``serve``: in-process ``get_online_features(...).to_dict()`` latency after a warm-up,
   1 entity x 2 views x 10 features, then 100 entities, random existing keys (the same
   sequence for both systems); then a sample of keys is read back and checked against the
   source data and between the systems.

    .venv/bin/python benches/online_servers.py --quick     # 10k keys smoke run
    .venv/bin/python benches/online_servers.py             # 100k keys x 5 rows per view
    .venv/bin/python benches/online_servers.py --stores redis --peers banquet
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import online as O  # noqa: E402

STORES = ["redis", "postgres"]
PEERS = ["banquet", "feast"]
REDIS_DB = {"banquet": 12, "feast": 13}  # each system its own database on the shared server
PG_SCHEMA = {"banquet": "bench_online_banquet", "feast": "bench_online_feast"}
VALUES_PER_KEY = sum(len(feats) for _, _, feats in O.VIEWS)

TARGETS = {  # issue 5
    "redis": {"p50_1": 200.0, "p99_1": 1000.0, "p50_100": 1500.0, "mat": 500_000.0},
    "postgres": {"p50_1": 600.0, "mat": 200_000.0},
}
SPEEDUP = {"1": 3.0, "100": 7.0, "mat": 50.0}
MEMORY_RATIO = 0.5  # banquet's bytes per value at most half of Feast's


# --- the servers -----------------------------------------------------------------------------


def redis_host_port() -> tuple[str, int]:
    return os.environ.get("BANQUET_REDIS_HOST", "127.0.0.1"), int(
        os.environ.get("BANQUET_REDIS_PORT", "56379")
    )


def redis_auth() -> str:
    """``,password=..`` for a connection_string (the local Redis has requirepass)."""
    password = os.environ.get("BANQUET_REDIS_PASSWORD", "")
    return f",password={password}" if password else ""


def pg_settings() -> dict:
    return {
        "host": os.environ.get("BANQUET_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("BANQUET_PG_PORT", "55432")),
        "database": os.environ.get("BANQUET_PG_DB", "banquet"),
        "user": os.environ.get("BANQUET_PG_USER", "banquet"),
        "password": os.environ.get("BANQUET_PG_PASSWORD", ""),
    }


def online_yaml(store: str, peer: str) -> str:
    if store == "redis":
        host, port = redis_host_port()
        return (
            "online_store:\n  type: redis\n"
            f'  connection_string: "{host}:{port},db={REDIS_DB[peer]}{redis_auth()}"\n'
        )
    lines = ["online_store:", "  type: postgres"]
    lines += [f"  {k}: {v}" for k, v in pg_settings().items()]
    lines.append(f"  db_schema: {PG_SCHEMA[peer]}")
    if peer == "feast":
        lines.append(
            "  sslmode: disable"
        )  # Feast asks for SSL by default; the local server has none
    return "\n".join(lines) + "\n"


def redis_client(db: int = 0):
    import redis

    host, port = redis_host_port()
    password = os.environ.get("BANQUET_REDIS_PASSWORD") or None
    return redis.Redis(host=host, port=port, db=db, password=password, socket_timeout=30)


def clear_place(store: str, peer: str) -> None:
    """Empty this system's own database / schema (and only that)."""
    if store == "redis":
        client = redis_client(REDIS_DB[peer])
        client.flushdb()
        client.close()
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(**_libpq(pg_settings()), autocommit=True) as conn:
        schema = sql.Identifier(PG_SCHEMA[peer])
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))


def _libpq(s: dict) -> dict:
    return {
        "host": s["host"],
        "port": s["port"],
        "dbname": s["database"],
        "user": s["user"],
        "password": s["password"],
    }


def used_memory() -> int:
    client = redis_client()
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def flush_and_measure(peer: str) -> int:
    """``used_memory`` freed by emptying this system's database (the median of 3 readings
    each side, so that a concurrent client's burst shows less)."""
    client = redis_client(REDIS_DB[peer])
    try:
        before = sorted(int(client.info("memory")["used_memory"]) for _ in range(3))[1]
        client.flushdb(asynchronous=False)
        after = sorted(int(client.info("memory")["used_memory"]) for _ in range(3))[1]
        return before - after
    finally:
        client.close()


def redis_key_stats(peer: str, sample: int = 200) -> dict:
    """Key count of the system's database and the mean ``MEMORY USAGE`` of sampled keys."""
    client = redis_client(REDIS_DB[peer])
    try:
        n = client.dbsize()
        keys = [client.randomkey() for _ in range(min(sample, n))]
        usage = [client.memory_usage(k, samples=0) or 0 for k in keys if k]
        return {"keys": n, "memory_usage_mean": sum(usage) / len(usage) if usage else 0}
    finally:
        client.close()


def pg_sizes(peer: str) -> dict:
    import psycopg

    with psycopg.connect(**_libpq(pg_settings()), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid), c.reltuples::bigint "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r'",
            [PG_SCHEMA[peer]],
        ).fetchall()
    return {r[0]: {"bytes": r[1], "rows": r[2]} for r in rows}


# --- children --------------------------------------------------------------------------------


def repo_dir(d: Path, store: str, peer: str) -> Path:
    return d / f"{peer}_{store}_repo"


def write_repo(repo: Path, store: str, peer: str, d: Path) -> None:
    import shutil

    if repo.exists():
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        f"project: {O.PROJECT}\nprovider: local\nregistry: data/registry.db\n"
        + online_yaml(store, peer)
        + "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    (repo / "definitions.py").write_text(O._defs(peer, d))


def child_setup(args) -> None:
    d = Path(args.data)
    repo = repo_dir(d, args.store, args.peer)
    write_repo(repo, args.store, args.peer, d)
    if args.peer == "banquet":
        from banquet import FeatureStore

        FeatureStore(repo_path=repo).apply()
    else:
        import importlib.util

        from feast import FeatureStore as FeastStore

        spec = importlib.util.spec_from_file_location("bench_defs", repo / "definitions.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        FeastStore(repo_path=str(repo)).apply(mod.OBJECTS)
    C.report({"setup": args.peer, "store": args.store})


def child_materialize(args) -> None:
    d = Path(args.data)
    store, version = O._open(args.peer, repo_dir(d, args.store, args.peer))
    O._preimport(*O.PREIMPORT[args.peer])
    gc.collect()
    # One call for every view, as `banquet materialize START END` / `feast materialize` run it.
    t = time.perf_counter()
    store.materialize(O.WINDOW_START, O.WINDOW_END)
    total = time.perf_counter() - t
    C.report(
        {
            "peer": args.peer,
            "version": version,
            "total_s": total,
            "peak_mb": C.rss_mb("VmHWM"),
        }
    )


def child_serve(args) -> None:
    d = Path(args.data)
    store, version = O._open(args.peer, repo_dir(d, args.store, args.peer))
    w1, w100, s1, s100 = O._key_sequences(d, args.warmup, args.iters_1, args.iters_100)
    refs = list(O.FEATURE_REFS)
    get = store.get_online_features
    perf = time.perf_counter_ns
    for k in w1:
        get(features=refs, entity_rows=[{"user_id": k}]).to_dict()
    for ks in w100:
        get(features=refs, entity_rows=[{"user_id": k} for k in ks]).to_dict()
    load_before = os.getloadavg()
    results = {}
    for label, seq in (("1", [[k] for k in s1]), ("100", s100)):
        rows_list = [[{"user_id": k} for k in ks] for ks in seq]
        lat = []
        gc.collect()
        for rows in rows_list:
            t = perf()
            out = get(features=refs, entity_rows=rows).to_dict()
            lat.append(perf() - t)
        assert len(out[O.FEATURES[0]]) == len(rows), "wrong number of rows"
        results[label] = O._stats(lat)
    load_after = os.getloadavg()
    present, absent = O._sample_keys(d, args.sample)
    got: dict[str, dict] = {}
    for i in range(0, len(present), 100):
        ks = present[i : i + 100]
        out = get(features=refs, entity_rows=[{"user_id": k} for k in ks]).to_dict()
        for j, k in enumerate(ks):
            got[str(k)] = {f: out[f][j] for f in O.FEATURES}
    out = get(features=refs, entity_rows=[{"user_id": k} for k in absent]).to_dict()
    for j, k in enumerate(absent):
        got[str(k)] = {f: out[f][j] for f in O.FEATURES}
    Path(args.out).write_text(json.dumps({"present": present, "absent": absent, "values": got}))
    C.report(
        {
            "peer": args.peer,
            "version": version,
            "latency": results,
            "load_before": load_before,
            "load_after": load_after,
        }
    )


# --- the parent ------------------------------------------------------------------------------


def ancestors() -> set[int]:
    """This process's parents up to pid 1 (a wrapper such as ``timeout ... online_servers.py``
    names this script on its command line but is not other work)."""
    found, pid = set(), os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        found.add(pid)
    return found


def busy() -> list[str]:
    """Compilers and other benchmarks (any benches/*.py but this run's own processes)."""
    found = O.other_work()
    mine = ancestors() | {os.getpid()}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or O._is_mine(int(p.name)) or int(p.name) in mine:
            continue
        try:
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv[1:4] if a]
        if any("benches/" in a and a.endswith(".py") for a in args):
            found.append(f"{p.name} {' '.join(args)[:100]}")
    return found


def wait_quiet(args) -> dict:
    """Wait (up to --wait-max s) until no other benchmark or compiler runs and the 1-minute
    load average is under --max-load; say what was seen."""
    deadline = time.monotonic() + args.wait_max
    told = False
    while True:
        others, load = busy(), os.getloadavg()[0]
        if not others and load < args.max_load:
            return {"quiet": True, "load": load}
        if time.monotonic() >= deadline:
            what = others[0] if others else f"load {load:.2f}"
            print(f"  ! not quiet after {args.wait_max:.0f}s, running anyway ({what})", flush=True)
            return {"quiet": False, "load": load, "others": others[:3]}
        if not told:
            what = others[0] if others else f"load {load:.2f}"
            print(f"  waiting for a quiet machine ({what})", flush=True)
            told = True
        time.sleep(5)


def run_step(args, d: Path, step: str, store: str, peer: str, extra: list[str] = ()) -> dict:
    cmd = [str(O.python_for(peer)), __file__, step, "--peer", peer, "--store", store]
    cmd += ["--data", str(d), *extra]
    log = d / "logs" / f"servers-{store}-{peer}-{step}.log"
    run = C.run_child(cmd, args.timeout, log)
    if not run.ok:
        raise RuntimeError(f"{store}/{peer} {step} failed: {run.error} (log: {log})")
    return run.result or {}


def run_all(args) -> dict:
    d = O.ensure_data(args.keys, args.rows_per_key)
    (d / "logs").mkdir(exist_ok=True)
    n_keys = args.keys
    res: dict = {"keys": n_keys, "rows_per_key": args.rows_per_key, "stores": {}}
    for store in args.stores:
        per: dict = {}
        samples = {}
        for peer in args.peers:
            print(f"{store} / {peer}: setup", flush=True)
            clear_place(store, peer)
            run_step(args, d, "setup", store, peer)
            quiet = {"materialize": wait_quiet(args)}
            os.sync()  # earlier steps' dirty pages must not be written back during this one
            mem0 = used_memory() if store == "redis" else 0
            print(f"{store} / {peer}: materialize", flush=True)
            mat = run_step(args, d, "materialize", store, peer)
            r: dict = {"version": mat["version"], "materialize": mat, "quiet": quiet}
            r["mat_rows_per_s"] = n_keys * len(O.VIEWS) / mat["total_s"]
            if store == "redis":
                grew = used_memory() - mem0
                r["memory"] = {
                    "used_memory_growth": grew,
                    "growth_per_value": grew / (n_keys * VALUES_PER_KEY),
                    **redis_key_stats(peer),
                }
            else:
                r["tables"] = pg_sizes(peer)
            print(f"{store} / {peer}: serve", flush=True)
            out = d / "logs" / f"servers-{store}-{peer}-sample.json"
            extra = ["--out", str(out), "--warmup", str(args.warmup)]
            extra += ["--iters-1", str(args.iters_1), "--iters-100", str(args.iters_100)]
            extra += ["--sample", str(args.sample)]
            quiet["serve"] = wait_quiet(args)
            serve = run_step(args, d, "serve", store, peer, extra)
            r["latency"] = serve["latency"]
            r["load"] = [serve["load_before"], serve["load_after"]]
            samples[peer] = json.loads(out.read_text())
            if store == "redis":
                freed = flush_and_measure(peer)
                r["memory"]["used_memory_freed"] = freed
                r["memory"]["bytes_per_value"] = freed / (n_keys * VALUES_PER_KEY)
            per[peer] = r
            print(f"  {summary(r)}", flush=True)
        res["stores"][store] = {"peers": per, "problems": O.verify(d, samples)}
    return res


def summary(r: dict) -> str:
    lat = r["latency"]
    text = (
        f"{r['version']}: p50 1 entity {lat['1']['p50_us']:.0f} us (p99 {lat['1']['p99_us']:.0f}),"
        f" 100 entities {lat['100']['p50_us']:.0f} us (p99 {lat['100']['p99_us']:.0f}),"
        f" materialize {r['mat_rows_per_s']:,.0f} rows/s"
    )
    if "memory" in r:
        text += f", {r['memory']['bytes_per_value']:.1f} B/value"
    return text


def render(args, res: dict, started: str, info: dict, loads: tuple) -> str:
    lines = [
        f"- date: {started}; at the start: {args.git_at_start}; at the end: {O.git_state()}",
        f"- machine: {C.machine_line(info)}",
        f"- load average before the run: {loads[0]:.2f}, after: {os.getloadavg()[0]:.2f}",
        f"- data: {res['keys']:,} keys x {res['rows_per_key']} rows per view, 2 views x 10 "
        f"features; {args.iters_1} calls of 1 entity, {args.iters_100} of 100 entities",
        "- command: `source scripts/services.env && .venv/bin/python benches/online_servers.py"
        + (" --quick" if args.quick else "")
        + "`",
        "",
    ]
    for store, sres in res["stores"].items():
        peers = sres["peers"]
        b, f = peers.get("banquet"), peers.get("feast")
        lines += [f"**{store}**", ""]
        rows = []

        def us(x: float) -> str:
            return f"{x:,.0f} us" if x >= 10 else f"{x:.1f} us"

        metrics = [
            ("get_online_features, 1 entity, p50", lambda r: r["latency"]["1"]["p50_us"], us),
            ("get_online_features, 1 entity, p99", lambda r: r["latency"]["1"]["p99_us"], us),
            ("get_online_features, 100 entities, p50", lambda r: r["latency"]["100"]["p50_us"], us),
            ("get_online_features, 100 entities, p99", lambda r: r["latency"]["100"]["p99_us"], us),
            ("materialization, rows/s", lambda r: r["mat_rows_per_s"], lambda v: f"{v:,.0f}"),
        ]
        if store == "redis":
            metrics.append(
                (
                    "Redis memory per stored value (freed by FLUSHDB)",
                    lambda r: r["memory"]["bytes_per_value"],
                    lambda v: f"{v:.1f} B",
                )
            )
        for name, get, fmt in metrics:
            bv = get(b) if b else None
            fv = get(f) if f else None
            ratio = ""
            if bv and fv:
                higher_better = "rows/s" in name
                ratio = f"{(bv / fv if higher_better else fv / bv):.1f}x"
                if "memory" in name:
                    ratio = f"{bv / fv:.2f} of Feast's"
            rows.append(
                [
                    name,
                    fmt(bv) if bv is not None else "-",
                    fmt(fv) if fv is not None else "-",
                    ratio,
                ]
            )
        versions = [p["version"] for p in peers.values()]
        lines.append(
            C.markdown_table(
                ["", *[v for v in versions], "banquet vs Feast"], rows, right={1, 2, 3}
            )
        )
        lines.append("")
        for r in peers.values():
            notes = [
                f"{step} {'quiet' if q['quiet'] else 'NOT quiet'} (load {q['load']:.2f})"
                for step, q in r["quiet"].items()
            ]
            lines.append(f"- {r['version']}: " + ", ".join(notes))
        lines.append("")
        lines += targets(store, b, f)
        if sres["problems"]:
            lines += ["", "Check problems:", *[f"- {p}" for p in sres["problems"]]]
        else:
            lines += ["", "Sampled values agree with the source data (and between systems)."]
        if store == "redis" and b and f:
            bm, fm = b["memory"], f["memory"]
            lines.append(
                f"Memory cross-checks: used_memory growth during materialization per value "
                f"banquet {bm['growth_per_value']:.1f} B, Feast {fm['growth_per_value']:.1f} B; "
                f"MEMORY USAGE per key (mean of 200 sampled) banquet "
                f"{bm['memory_usage_mean']:.0f} B, Feast {fm['memory_usage_mean']:.0f} B "
                f"({VALUES_PER_KEY} values per key); keys: banquet {bm['keys']:,}, "
                f"Feast {fm['keys']:,}."
            )
        lines.append("")
    return "\n".join(lines)


def targets(store: str, b: dict | None, f: dict | None) -> list[str]:
    if b is None:
        return []
    out = []
    t = TARGETS[store]

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lat = b["latency"]
    if "p50_1" in t:
        v = lat["1"]["p50_us"]
        out.append(f"- 1 entity p50 <= {t['p50_1']:.0f} us: {v:.0f} us, {mark(v <= t['p50_1'])}")
    if "p99_1" in t:
        v = lat["1"]["p99_us"]
        out.append(f"- 1 entity p99 <= {t['p99_1']:.0f} us: {v:.0f} us, {mark(v <= t['p99_1'])}")
    if "p50_100" in t:
        v = lat["100"]["p50_us"]
        out.append(
            f"- 100 entities p50 <= {t['p50_100']:.0f} us: {v:.0f} us, {mark(v <= t['p50_100'])}"
        )
    v = b["mat_rows_per_s"]
    out.append(f"- materialization >= {t['mat']:,.0f} rows/s: {v:,.0f}, {mark(v >= t['mat'])}")
    if f is not None and store == "redis":
        for label, want in (("1", SPEEDUP["1"]), ("100", SPEEDUP["100"])):
            x = f["latency"][label]["p50_us"] / lat[label]["p50_us"]
            out.append(
                f"- >= {want:.0f}x Feast at {label} entit{'y' if label == '1' else 'ies'} "
                f"(p50): {x:.1f}x, {mark(x >= want)}"
            )
        x = b["mat_rows_per_s"] / f["mat_rows_per_s"]
        out.append(f"- >= {SPEEDUP['mat']:.0f}x Feast materializing: {x:.1f}x, {mark(x >= 50)}")
        m = b["memory"]["bytes_per_value"] / f["memory"]["bytes_per_value"]
        out.append(
            f"- Redis memory per value <= {MEMORY_RATIO} of Feast's: {m:.2f}, "
            f"{mark(m <= MEMORY_RATIO)}"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="step")
    for step in ("setup", "materialize", "serve"):
        ch = sub.add_parser(step)
        ch.add_argument("--peer", required=True, choices=PEERS)
        ch.add_argument("--store", required=True, choices=STORES)
        ch.add_argument("--data", required=True)
        if step == "serve":
            ch.add_argument("--out", required=True)
            ch.add_argument("--warmup", type=int, default=500)
            ch.add_argument("--iters-1", type=int, default=5000)
            ch.add_argument("--iters-100", type=int, default=1000)
            ch.add_argument("--sample", type=int, default=500)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--rows-per-key", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10k keys, fewer calls (smoke run)")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--stores", default=",".join(STORES))
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--iters-1", type=int, default=5000)
    ap.add_argument("--iters-100", type=int, default=1000)
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--max-load", type=float, default=1.5, help="wait for a lower load average")
    ap.add_argument("--wait-max", type=float, default=300, help="seconds to wait per step")
    ap.add_argument("--write-md", help="also write the markdown results to this file")
    args = ap.parse_args()
    if args.step == "setup":
        return child_setup(args)
    if args.step == "materialize":
        return child_materialize(args)
    if args.step == "serve":
        return child_serve(args)
    args.peers = [p for p in args.peers.split(",") if p]
    args.stores = [s for s in args.stores.split(",") if s]
    if args.quick:
        args.keys, args.iters_1, args.iters_100, args.warmup = 10_000, 1000, 200, 100
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    args.git_at_start = O.git_state()
    info = C.machine_info()
    loads = os.getloadavg()
    res = run_all(args)
    md = render(args, res, started, info, loads)
    print()
    print(md)
    raw = Path(args.write_md or C.DATA / "online_servers.md")
    raw.write_text(md)
    (C.DATA / "online_servers.json").write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
