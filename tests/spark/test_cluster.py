"""get_historical_features on the Spark standalone cluster of `make services` (one master, two
workers on loopback): the result equals the file store's, also when one of the job's executor
JVMs is killed (SIGKILL) while the join runs: Spark re-runs the lost tasks (and the map
outputs the dead executor held), nothing is lost or doubled. In a process of its own
(cluster_job.py): this test run already holds a local[2] SparkContext."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.redis, pytest.mark.slow]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def spark_master() -> str:
    """The standalone master's URL (BANQUET_SPARK_MASTER), checked to accept connections."""
    import socket

    url = os.environ["BANQUET_SPARK_MASTER"]
    host, _, port = url.removeprefix("spark://").partition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        pytest.fail(
            f"the Spark master at {url} does not answer: run `make services` "
            f"(scripts/services.sh start spark) ({e})",
            pytrace=False,
        )
    return url


def test_cluster_result_equals_the_file_store_with_an_executor_killed(
    spark_master: str, tmp_path: Path
) -> None:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "cluster_job.py"), str(tmp_path), spark_master]
        + ["--kill-executor"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    got = json.loads(lines[-1])
    assert got["killed"], "no executor was killed while the job ran"
    assert got["rows"] == got["entity_rows"]
    assert got["equal"], "the cluster's result differs from the file store's"
    assert "Lost executor" in proc.stderr  # Spark saw the loss and recovered
