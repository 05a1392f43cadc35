"""Run by test_cluster.py in a process of its own (one SparkContext per process: the test run
already holds a local[2] one): the same historical retrieval on the file store and on the
Spark standalone cluster at MASTER, compared; with --kill-executor one of the job's executor
JVMs is killed (SIGKILL) while the join's tasks run. Prints one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

import test_spark_store as t  # noqa: E402


def executor_pids(app_id: str) -> list[int]:
    """This application's executor JVMs (children of the cluster's workers)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "CoarseGrainedExecutorBackend" in cmd and app_id in cmd:
            out.append(int(d))
    return out


def kill_one_executor(sc: Any, killed: list[int]) -> None:
    """Once a stage runs and both executors are up, SIGKILL one of them."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        active = sc.statusTracker().getActiveStageIds()
        pids = executor_pids(sc.applicationId)
        if active and len(pids) >= 2:
            time.sleep(0.3)  # tasks of the stage are running
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
            return
        time.sleep(0.02)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("master")
    p.add_argument("--rows", type=int, default=60_000)
    p.add_argument("--kill-executor", action="store_true")
    a = p.parse_args()
    root = Path(a.root)
    entity = t._random_data(root, a.rows, 4000, 0.2, seed=11)
    refs = ["unbounded:f_int", "unbounded:f_str", "ttl:f_int", "ttl:f_str"]
    conf = {
        "spark.master": a.master,
        "spark.pyspark.python": sys.executable,
        "spark.executor.memory": "512m",
        "spark.executor.cores": "1",
        "spark.sql.shuffle.partitions": "8",
        "spark.sql.adaptive.enabled": "false",  # 8 tasks per stage: the kill lands mid-stage
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.task.maxFailures": "4",
    }
    outs = []
    killed: list[int] = []
    seconds = 0.0
    for kind in ("file", "spark"):
        src = t.data_source(kind)
        store = t.data_store(root, kind, t._redis(), conf, project="cluster")
        store.apply([t.user, t.view(src, "unbounded"), t.view(src, "ttl", ttl=7 * t.H)])
        job = store.get_historical_features(entity, refs, full_feature_names=True)
        if kind == "spark" and a.kill_executor:
            sc = store.offline_store.spark.sparkContext  # type: ignore[attr-defined]
            threading.Thread(target=kill_one_executor, args=(sc, killed), daemon=True).start()
        t0 = time.perf_counter()
        outs.append(job.to_arrow())
        if kind == "spark":
            seconds = time.perf_counter() - t0
        store.online_store.close()
    print(
        json.dumps(
            {
                "rows": outs[1].num_rows,
                "entity_rows": entity.num_rows,
                "equal": outs[1].equals(outs[0]),
                "killed": killed,
                "seconds": round(seconds, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
