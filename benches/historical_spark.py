"""Historical retrieval and materialization on Apache Spark (issue #15).

Same data, same cluster, same run: banquet on its Spark offline store, Feast 0.67 on its Spark
offline store (``feast[spark]==0.67.0`` in benches/.venv-peers) and banquet in-process (its
file offline store). The data is benches/historical.py's (two views x 5 features, one key per
10 feature rows, ties and ttl edges), generated into benches/data/spark/ (a folder of its own:
other benches running at the same time keep theirs):

- ``1Mx1M``: 1M feature rows per view x 1M entity rows; ``10Mx1M``: 10M x 1M;
- ``hot1Mx100k``: 1M feature rows per view x 100k entity rows where 1% of the keys hold 50%
  of the feature rows and of the entity rows.

Runs, each in a subprocess that times itself (Spark session start-up and the registry read
are outside the clock; the clock covers ``get_historical_features(...).to_arrow()`` from the
entity rows' Parquet read):

- ``inproc``: banquet, file offline store (the reference every output is compared with, row
  for row; it is checked against historical.py's numpy oracle);
- ``spark-2w`` / ``spark-1w``: banquet on the standalone cluster of ``make services``
  (BANQUET_SPARK_MASTER; two workers of 1 core) with ``spark.cores.max`` 2 / 1;
- ``spark-local``: banquet on ``local[2]``;
- ``feast-2w``: Feast's Spark offline store on the same cluster, 2 cores (Feast does not
  promise input order: its output is sorted back by a row number column);
- ``materialize-*``: banquet's ``materialize`` of both views from Spark into the local Redis
  (a fresh project: torn down before the clock), rows/s = source rows in the window per second,
  keys/s = distinct keys written per second; ``-local`` / ``-2w`` / ``-1w`` as above; cpu =
  CPU seconds of this process's tree and the application's executors (JVMs, Python workers)
  during the call, which the machine's other load moves much less than the wall time;
  ``--split N`` reads the views rewritten with N row groups per file (``rg<N>/``: several
  read tasks per view, the shuffle path) instead of one.

    .venv/bin/python benches/historical_spark.py --sizes 1Mx1M,hot1Mx100k
    .venv/bin/python benches/historical_spark.py --sizes 1Mx1M --runs materialize-local,materialize-2w
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
import historical as H  # noqa: E402

DATA = C.DATA / "spark"
SIZES = {  # name -> (entity rows, feature rows per view, keys, hot)
    "quick": (100_000, 100_000, 10_000, False),  # a smoke run
    "1Mx1M": (1_000_000, 1_000_000, 100_000, False),
    "10Mx1M": (1_000_000, 10_000_000, 1_000_000, False),
    "hot1Mx100k": (100_000, 1_000_000, 100_000, True),
}
RUNS = [
    "inproc",
    "spark-2w",
    "spark-1w",
    "spark-local",
    "feast-2w",
    "materialize-local",
    "materialize-2w",
    "materialize-1w",
]
PROJECT = "bench_spark"


def size_dir(size: str) -> Path:
    return DATA / size


def ensure_data(size: str) -> Path:
    d = size_dir(size)
    n_ent, n_feat, n_keys, hot = SIZES[size]
    want = {"gen": H.GEN_VERSION, "seed": H.SEED, "size": list(SIZES[size]), "hot": 1}
    manifest = d / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return d
    print(f"  generating {size} into {d} ...", flush=True)
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    H._generate(d, n_ent, n_feat, n_keys)
    if hot:
        _make_hot(d, n_keys)
    manifest.write_text(json.dumps(want))
    return d


def _make_hot(d: Path, n_keys: int) -> None:
    """Half the feature rows of each view and half the entity rows move to 1% of the keys."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng([H.SEED, 7])
    n_hot = max(1, n_keys // 100)
    for _, fname, _, _ in H.VIEWS:
        t = pq.read_table(d / fname)
        uid = t["user_id"].to_numpy().copy()
        move = rng.random(len(uid)) < 0.5
        uid[move] = rng.integers(0, n_hot, int(move.sum()))
        ts = t["event_timestamp"].cast(pa.int64()).to_numpy()
        created = t["created"].cast(pa.int64()).to_numpy().copy()
        H._break_full_ties(uid, ts, created)
        t = t.set_column(0, "user_id", pa.array(uid))
        t = t.set_column(2, "created", pa.array(created, pa.timestamp("us", tz="UTC")))
        pq.write_table(t, d / fname)
    e = pq.read_table(d / "entity.parquet")
    uid = e["user_id"].to_numpy().copy()
    move = rng.random(len(uid)) < 0.5
    uid[move] = rng.integers(0, n_hot, int(move.sum()))
    pq.write_table(e.set_column(0, "user_id", pa.array(uid)), d / "entity.parquet")


# --- repos --------------------------------------------------------------------------------------


def spark_conf(run: str, python: str) -> dict[str, str]:
    conf = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.memory": "3g",
    }
    if run.endswith("local"):
        conf["spark.master"] = "local[2]"
        conf["spark.sql.shuffle.partitions"] = "8"
    else:
        cores = "1" if run.endswith("1w") else "2"
        conf.update(
            {
                "spark.master": os.environ["BANQUET_SPARK_MASTER"],
                "spark.cores.max": cores,
                "spark.executor.cores": "1",
                "spark.executor.memory": "512m",
                "spark.pyspark.python": python,
                "spark.sql.shuffle.partitions": "8",
            }
        )
    if os.environ.get("PYTHONPATH"):  # executors import what this process imports (e.g. a
        conf["spark.executorEnv.PYTHONPATH"] = os.environ["PYTHONPATH"]  # before/after run)
    return conf


def _redis() -> str:
    host, port = os.environ["BANQUET_REDIS_HOST"], os.environ["BANQUET_REDIS_PORT"]
    return f"{host}:{port},password={os.environ['BANQUET_REDIS_PASSWORD']}"


def _defs(kind: str, d: Path) -> str:
    """historical.py's definitions with SparkSource in place of FileSource."""
    text = H._defs(kind, d)
    mod = (
        "banquet"
        if kind == "banquet"
        else "feast.infra.offline_stores.contrib.spark_offline_store.spark_source"
    )
    text = text.replace(
        f"from {kind} import Entity, FeatureView, Field, FileSource",
        f"from {kind} import Entity, FeatureView, Field\nfrom {mod} import SparkSource",
    )
    return text.replace("FileSource(", "SparkSource(").replace(
        'path="', 'file_format="parquet", path="'
    )


def ensure_split(d: Path, groups: int) -> Path:
    """The views' files rewritten with ``groups`` row groups each (same rows, same order), in
    ``d/rg<groups>/``: a layout the direct read splits across tasks (one row group is one
    task's at most)."""
    import pyarrow.parquet as pq

    out = d / f"rg{groups}"
    out.mkdir(exist_ok=True)
    for _, fname, _, _ in H.VIEWS:
        target = out / fname
        src = pq.ParquetFile(d / fname)
        rows = -(-src.metadata.num_rows // groups)
        if target.exists() and pq.ParquetFile(target).metadata.num_row_groups == groups:
            continue
        pq.write_table(pq.read_table(d / fname), target, row_group_size=rows)
    return out


def write_repo(d: Path, run: str, kind: str, data: Path | None = None) -> Path:
    """The run's feature repo (registry applied in this process, the run's interpreter);
    ``data``: where the views' files are (default ``d``)."""
    import yaml

    repo = d / f"repo-{run}"
    if repo.exists():
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    if run == "inproc":
        offline: dict = {"type": "file"}
        defs = H._defs(kind, d)
    else:
        offline = {"type": "spark", "spark_conf": spark_conf(run, sys.executable)}
        defs = _defs(kind, data or d)
    if run.startswith("materialize"):  # no ttl: the read-back check reads old rows
        defs = defs.replace("ttl=timedelta(days=", "ttl=timedelta(days=0 * ")
    cfg = {
        "project": PROJECT,
        "provider": "local",
        "registry": "data/registry.db",
        "online_store": {"type": "redis", "connection_string": _redis()}
        if run != "inproc"  # Spark refuses SQLite (executors cannot share the file)
        else {"type": "sqlite", "path": "data/online.db"},
        "offline_store": offline,
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(cfg))
    (repo / "definitions.py").write_text(defs)
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_defs", repo / "definitions.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if kind == "banquet":
        from banquet import FeatureStore

        FeatureStore(repo_path=repo).apply(mod.OBJECTS)
    else:
        from feast import FeatureStore as FeastStore

        FeastStore(repo_path=str(repo)).apply(mod.OBJECTS)
    return repo


# --- the child ----------------------------------------------------------------------------------


def child_main(a: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    d = size_dir(a.size)
    kind = "feast" if a.run.startswith("feast") else "banquet"
    split = ensure_split(d, a.split) if a.split and a.run.startswith("materialize") else None
    repo = write_repo(d, a.run, kind, split)
    entity = d / "entity.parquet"
    result: dict = {"run": a.run, "size": a.size, "split": a.split}
    if kind == "banquet":
        import banquet
        from banquet import FeatureStore

        store = FeatureStore(repo_path=repo)
        result["version"] = f"banquet {getattr(banquet, '__version__', '?')}"
        if a.run != "inproc":
            spark = store.offline_store.spark  # type: ignore[attr-defined]
            spark.range(4).count()  # session and executors up before the clock
            result["spark"] = spark.version
    else:
        import feast
        import numpy as np
        import pandas as pd
        from feast import FeatureStore as FeastStore
        from pyspark.sql import SparkSession

        store = FeastStore(repo_path=str(repo))
        store.list_feature_views()
        b = SparkSession.builder
        for k, v in spark_conf(a.run, sys.executable).items():
            b = b.config(k, v)
        spark = b.getOrCreate()  # Feast's store reuses the active session
        spark.range(4).count()
        result["version"] = f"feast {feast.__version__} (spark offline store)"
        result["spark"] = spark.version

    if a.run.startswith("materialize"):
        from datetime import datetime, timezone

        objs = [*store.list_entities(), *store.list_feature_views()]
        store.teardown()  # a fresh project: every key is new
        store.apply(objs)
        start = datetime(2024, 1, 1, tzinfo=timezone.utc)
        end = datetime(2026, 1, 1, tzinfo=timezone.utc)
        from banquet.offline.spark import materialize as M

        stages: dict[str, float] = {}
        for name in ("check_times", "write_view"):
            fn = getattr(M, name)

            def timed(*args, _fn=fn, _name=name, **kw):
                t = time.perf_counter()
                try:
                    return _fn(*args, **kw)
                finally:
                    stages[_name] = stages.get(_name, 0.0) + time.perf_counter() - t

            setattr(M, name, timed)
        cpu0 = _tree_cpu(spark)
        t0 = time.perf_counter()
        store.materialize(start, end)
        wall = time.perf_counter() - t0
        result["cpu_s"] = _tree_cpu(spark) - cpu0
        n_rows = sum(pq.ParquetFile(d / f).metadata.num_rows for _, f, _, _ in H.VIEWS)
        n_keys = 0
        for _, f, _, _ in H.VIEWS:
            n_keys += len(set(pq.read_table(d / f, columns=["user_id"])["user_id"].to_numpy()))
        result.update(wall_s=wall, source_rows=n_rows, keys=n_keys, stages=stages)
        # spot check: 200 keys read back equal the latest row per key of view A
        result["spot_check"] = _spot_check(store, d)
        C.report(result)
        return

    if kind == "banquet":

        def run():
            return store.get_historical_features(pq.read_table(entity), H.FEATURE_REFS).to_arrow()
    else:

        def run():
            e = pd.read_parquet(entity)
            e["_row"] = np.arange(len(e))
            out = store.get_historical_features(entity_df=e, features=H.FEATURE_REFS).to_arrow()
            return out.sort_by("_row").drop_columns(["_row"])

    t0 = time.perf_counter()
    out = run()
    wall = time.perf_counter() - t0
    canon = H.canonical(out)
    pq.write_table(canon, d / "out" / f"{a.run}.parquet")
    result.update(wall_s=wall, rows=out.num_rows, checksum=H.checksum(canon))
    C.report(result)


def _tree_cpu(spark) -> float:
    """CPU seconds (user + system, with reaped children's) of this process, its descendants
    (local[N]: the JVM and its Python workers) and this application's executors on the
    cluster (their JVMs and Python workers): a measure the other load on the machine moves
    much less than the wall time."""
    app = spark.sparkContext.applicationId
    parent: dict[int, int] = {}
    stat: dict[int, list[str]] = {}
    cmd: dict[int, bytes] = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            text = Path(f"/proc/{e}/stat").read_text()
            cmd[int(e)] = Path(f"/proc/{e}/cmdline").read_bytes()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        stat[int(e)] = fields
        parent[int(e)] = int(fields[1])
    roots = {os.getpid()} | {p for p, c in cmd.items() if app.encode() in c}
    mine = set()
    for p in stat:
        q = p
        while q > 1 and q not in roots:
            q = parent.get(q, 1)
        if q in roots:
            mine.add(p)
    tick = os.sysconf("SC_CLK_TCK")
    return sum(sum(int(x) for x in stat[p][11:15]) for p in mine) / tick


def _spot_check(store, d: Path) -> str:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    view, fname, _, feats = H.VIEWS[0]
    t = pq.read_table(d / fname)
    keys = np.unique(t["user_id"].to_numpy())[:: max(1, len(t) // 2000)][:200]
    sub = t.filter(pc.is_in(t["user_id"], value_set=__import__("pyarrow").array(keys)))
    sub = sub.sort_by(
        [("user_id", "ascending"), ("event_timestamp", "descending"), ("created", "descending")]
    )
    want: dict = {}
    for u, amount in zip(sub["user_id"].to_pylist(), sub[feats[1][0]].to_pylist()):
        want.setdefault(u, amount)
    got = store.get_online_features(
        features=[f"{view}:{feats[1][0]}"], entity_rows=[{"user_id": int(k)} for k in keys]
    ).to_dict()
    bad = sum(1 for u, g in zip(got["user_id"], got[feats[1][0]]) if want.get(u) != g)
    return f"{len(keys) - bad}/{len(keys)} keys equal the latest source row"


# --- the parent ---------------------------------------------------------------------------------


def parent_main(a: argparse.Namespace) -> None:
    info = C.machine_info()
    print(C.machine_line(info), flush=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    lines = []
    for size in a.sizes.split(","):
        d = ensure_data(size)
        (d / "out").mkdir(exist_ok=True)
        results: dict[str, dict] = {}
        for run in a.runs.split(","):
            py = C.PEERS_PY if run.startswith("feast") else C.BANQUET_PY
            for rep in range(a.repeat if not run.startswith("feast") else 1):
                # Feast's limit is its own: a ">= 5x" claim from a timeout needs a limit of
                # at least 5x banquet's time
                limit = (
                    a.feast_timeout if run.startswith("feast") and a.feast_timeout else a.timeout
                )
                cmd = [str(py), __file__, "child", "--size", size, "--run", run]
                if a.split and run.startswith("materialize"):
                    ensure_split(d, a.split)  # before the child: its clock covers no rewrite
                    cmd += ["--split", str(a.split)]
                cr = C.run_child(
                    cmd,
                    limit,
                    d / "logs" / f"{run}-{rep}.log",
                )
                if not cr.ok:
                    print(f"  {size} {run}: FAILED (limit {limit:.0f} s): {cr.error}", flush=True)
                    results.setdefault(run, {"error": cr.error})
                    continue
                r = cr.result
                r["rss_mb"] = cr.maxrss_mb
                label = f"{run} (row groups per view file: {a.split})" if r.get("split") else run
                msg = f"  {size} {label}: {r['wall_s']:.2f} s"
                if "source_rows" in r:
                    msg += (
                        f", {r['source_rows'] / r['wall_s']:,.0f} source rows/s, "
                        f"{r['keys'] / r['wall_s']:,.0f} keys/s, cpu {r.get('cpu_s', 0):.1f} s; "
                        f"{r['spot_check']}; "
                        + ", ".join(f"{k} {v:.2f} s" for k, v in r["stages"].items())
                    )
                print(msg, flush=True)
                best = results.get(run)
                if best is None or "error" in best or r["wall_s"] < best["wall_s"]:
                    results[run] = r
        lines += verify(d, size, results)
        print(f"load average at end of {size}: {os.getloadavg()}", flush=True)
    print("\n".join(lines))


def verify(d: Path, size: str, results: dict[str, dict]) -> list[str]:
    import pyarrow.parquet as pq

    out = []
    ref_path = d / "out" / "inproc.parquet"
    if not ref_path.exists():
        return [f"{size}: no in-process reference"]
    ref = pq.read_table(ref_path)
    problems = H.compare(H.cached_oracle(d), ref, f"{size} inproc vs oracle")
    out.append(f"{size} inproc vs numpy oracle: {problems if problems else 'equal'}")
    for run, r in results.items():
        if run == "inproc" or "error" in r or "rows" not in r:
            continue
        got = pq.read_table(d / "out" / f"{run}.parquet")
        problems = H.compare(ref, got, f"{size} {run}")
        out.append(f"{size} {run} vs inproc: {problems if problems else 'equal row for row'}")
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    c = sub.add_parser("child")
    c.add_argument("--size", required=True)
    c.add_argument("--run", required=True)
    c.add_argument("--split", type=int, default=0)
    p.add_argument("--sizes", default="1Mx1M,hot1Mx100k")
    p.add_argument("--runs", default=",".join(RUNS))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument(
        "--split",
        type=int,
        default=0,
        help="materialize-*: the views' files rewritten with this many row groups each "
        "(the direct read then splits a view across tasks)",
    )
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument(
        "--feast-timeout", type=float, default=0.0, help="Feast's runs (default: --timeout)"
    )
    a = p.parse_args()
    if a.cmd == "child":
        child_main(a)
    else:
        parent_main(a)


if __name__ == "__main__":
    main()
