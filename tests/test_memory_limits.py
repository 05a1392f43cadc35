"""Out of memory is a typed ``ResourceExhausted``, not an abort (issue #12, finding 5).

Each test runs a child process under an address-space limit (``RLIMIT_AS``) set a little
above what it already uses, after a warm-up that started the thread pools and allocator
arenas (the interpreter, pyarrow and rayon need a few hundred MB of address space for those
alone). The one big operation then cannot get its memory: the child must catch
``ResourceExhausted`` naming the operation and exit normally. Before the fix it died by
SIGABRT (a Rust allocation failure) or got a raw ``pyarrow.ArrowMemoryError``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import FeatureStore

MakeRepo = Callable[..., Path]
ROWS = 4_000_000

CHILD = r"""
import resource, sys
from datetime import datetime, timezone
import numpy as np, pyarrow as pa
from banquet import FeatureStore
from banquet.errors import ResourceExhausted

def address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")

repo, op, rows, headroom_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
utc = timezone.utc
store = FeatureStore(repo_path=repo)
t0 = datetime(2024, 1, 1, tzinfo=utc)
# Warm-up: thread pools, arenas and imports, before the limit.
store.materialize(t0, datetime(2024, 1, 1, 0, 0, 1, tzinfo=utc), ["user_activity"])
store.get_historical_features(
    {"user_id": [1], "event_timestamp": [datetime(2024, 1, 2, tzinfo=utc)]}, ["user_profile:age"]
).to_arrow()
if op == "materialize":  # the read itself fits in the address space pyarrow keeps reserved
    view = store.get_feature_view("user_activity")
    store.offline_store.read_view(view, view.features, None, None)
if op == "historical":
    entity = pa.table({
        "user_id": pa.array(np.arange(rows) % 4, pa.int64()),
        "event_timestamp": pa.array(
            np.full(rows, 1704153600 * 10**6), pa.timestamp("us", tz="UTC")
        ),
    })
resource.setrlimit(resource.RLIMIT_AS, (address_space() + (headroom_mb << 20), resource.RLIM_INFINITY))
try:
    if op == "historical":
        store.get_historical_features(entity, ["user_profile:age"]).to_arrow()
    else:
        store.materialize(t0, datetime(2025, 1, 1, tzinfo=utc), ["user_activity"])
    print("NO ERROR")
except ResourceExhausted as e:
    print("RESOURCE_EXHAUSTED", type(e.__cause__).__name__, "|", e)
"""


def _run_child(repo: Path, op: str, headroom_mb: int, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo), op, str(ROWS), str(headroom_mb)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode != -signal.SIGABRT, f"aborted:\n{proc.stderr[-2000:]}"
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    out = proc.stdout.strip().splitlines()[-1]
    assert out.startswith("RESOURCE_EXHAUSTED"), out
    return out


@pytest.fixture
def big_repo(tmp_repo: MakeRepo) -> Path:
    """The default repo with a 4M-row activity source (about 100 MB in memory)."""
    root = tmp_repo(project="memory")
    t0 = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() * 1e6)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(np.arange(ROWS) % 100_000, pa.int64()),
                "event_timestamp": pa.array(t0 + np.arange(ROWS), pa.timestamp("us", tz="UTC")),
                "clicks": pa.array(np.arange(ROWS), pa.int64()),
                "score": pa.array(np.ones(ROWS)),
            }
        ),
        root / "data" / "activity.parquet",
        row_group_size=500_000,
    )
    FeatureStore(repo_path=root).apply()
    return root


def test_a_point_in_time_join_too_large_for_the_limit_is_resource_exhausted(
    big_repo: Path,
) -> None:
    out = _run_child(big_repo, "historical", headroom_mb=60)
    assert "asof_join" in out and "could not allocate" in out, out


def test_a_materialization_too_large_for_the_limit_is_resource_exhausted(big_repo: Path) -> None:
    # The Rust scan's decoders allocate infallibly; each wave of row groups is probed first
    # (4x its decoded size), so the limit surfaces before the read as ResourceExhausted naming
    # the source, not as an abort. Same under the system allocator's fresh mappings.
    for env, headroom_mb in (
        ({}, 60),
        ({"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "131072"}, 10),
    ):
        out = _run_child(big_repo, "materialize", headroom_mb=headroom_mb, env=env)
        assert "source 'activity'" in out and "row group(s) of" in out, out
        assert "could not allocate" in out, out
