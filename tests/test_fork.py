"""Fork safety of the Rust kernels' thread pool, and BANQUET_THREADS.

A serving process that forks (gunicorn --preload, multiprocessing's "fork" context) must be
able to run a historical join in the child after the parent warmed the pool: rayon's global
pool has no threads in a forked child and would wait forever. Each scenario runs in a fresh
interpreter (``python -c``) so pytest's own process never forks with threads running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_CORES = len(os.sched_getaffinity(0))  # what Rust's available_parallelism sees

# The parent builds a repo of one view over 200k rows (enough for the join to go parallel),
# runs a historical join, forks, and the child (and then the parent again) re-runs it and
# prints a checksum; the parent prints its own for comparison.
_SCRIPT = textwrap.dedent(
    """
    import multiprocessing as mp
    import os
    import sys
    from datetime import datetime, timedelta, timezone

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from banquet import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, _core
    from banquet.types import Int64

    root = sys.argv[1]
    n = 200_000
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    ts = pd.Series(pd.to_datetime(np.arange(n) * 1_000_000 + 1_704_067_200_000_000, unit="us", utc=True))
    pq.write_table(
        pa.table({"user_id": np.arange(n) % 5000, "event_timestamp": ts, "v": np.arange(n)}),
        f"{root}/src.parquet",
    )
    user = Entity(name="user", join_keys=["user_id"])
    view = FeatureView(
        name="stats", entities=[user], ttl=timedelta(days=30),
        schema=[Field(name="v", dtype=Int64)],
        source=FileSource(name="src", path="src.parquet", timestamp_field="event_timestamp"),
    )
    store = FeatureStore(config=RepoConfig.from_dict({
        "project": "fork", "registry": f"{root}/registry.db",
        "online_store": {"type": "sqlite", "path": f"{root}/online.db"},
        "offline_store": {"type": "file"},
    }, repo_path=root))
    store.apply([user, view])
    entity_df = pd.DataFrame({
        "user_id": np.arange(100_000) % 6000,
        "event_timestamp": t0 + timedelta(hours=30),
    })

    def join() -> int:
        df = store.get_historical_features(entity_df, ["stats:v"]).to_df()
        return int(df["v"].fillna(-1).sum())

    expected = join()
    print("threads", _core.thread_count(), flush=True)
    # rayon's workers are named banquet-<i>: how many this process started
    comms = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    print("pool threads", sum(c.startswith("banquet-") and c[8:].isdigit() for c in comms), flush=True)
    mode = sys.argv[2]
    if mode == "os.fork":
        pid = os.fork()
        if pid == 0:
            ok = join() == expected and join() == expected
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        child = os.waitstatus_to_exitcode(status)
    else:
        proc = mp.get_context("fork").Process(target=lambda: sys.exit(0 if join() == expected else 3))
        proc.start()
        proc.join()
        child = proc.exitcode
    print("child", child, flush=True)
    print("parent", join() == expected, flush=True)
    """
)


def _run(tmp_path: Path, mode: str, threads: str | None) -> list[str]:
    env = dict(os.environ)
    env.pop("BANQUET_THREADS", None)
    if threads is not None:
        env["BANQUET_THREADS"] = threads
    # A deadlocked child hangs the script: the timeout fails the test, and the session's
    # process group (the script and its forked child) is killed so nothing is left behind.
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(tmp_path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the forked child did not finish its join within 60 s (deadlock?): {out}")
    assert proc.returncode == 0, err[-3000:]
    return out.split("\n")


@pytest.mark.parametrize("mode", ["os.fork", "multiprocessing"])
def test_child_of_a_fork_runs_a_historical_join(tmp_path: Path, mode: str) -> None:
    lines = _run(tmp_path, mode, threads="4")
    assert "threads 4" in lines
    assert "pool threads 4" in lines
    assert "child 0" in lines  # finished, with the parent's result
    assert "parent True" in lines  # the parent's pool still works after the fork


def test_banquet_threads_1_runs_sequentially(tmp_path: Path) -> None:
    """1 = no pool: the join ran on the calling thread and no worker thread was started
    (the 4-thread run above, the same join, counts 4)."""
    lines = _run(tmp_path, "os.fork", threads="1")
    assert "threads 1" in lines
    assert "pool threads 0" in lines
    assert "child 0" in lines and "parent True" in lines


@pytest.mark.parametrize(("value", "expected"), [(None, _CORES), ("0", _CORES), ("3", 3)])
def test_banquet_threads_sizes_the_pool(value: str | None, expected: int) -> None:
    code = "from banquet import _core; print(_core.thread_count())"
    env = {k: v for k, v in os.environ.items() if k != "BANQUET_THREADS"}
    if value is not None:
        env["BANQUET_THREADS"] = value
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert out.stdout.strip() == str(expected), out.stderr


def test_bad_banquet_threads_is_a_config_error() -> None:
    code = textwrap.dedent(
        """
        from banquet import _core
        from banquet.errors import ConfigError
        try:
            _core.thread_count()
        except ConfigError as e:
            print("ConfigError:", e)
        """
    )
    env = dict(os.environ, BANQUET_THREADS="many")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=30
    )
    assert 'ConfigError: BANQUET_THREADS="many" is not a thread count' in out.stdout, out.stderr
