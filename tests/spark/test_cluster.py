"""get_historical_features on the Spark standalone cluster of `make services` (one master, two
workers on loopback): the result equals the file store's, also when one of the job's executor
JVMs is killed (SIGKILL) while the join runs: Spark re-runs the lost tasks (and the map
outputs the dead executor held), nothing is lost or doubled. In a process of its own
(cluster_job.py): this test run already holds a local[2] SparkContext."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.redis, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cluster_support import master_url, run_job  # noqa: E402


def test_cluster_result_equals_the_file_store_with_an_executor_killed(tmp_path: Path) -> None:
    job = [str(HERE / "cluster_job.py"), str(tmp_path), master_url(), "--kill-executor"]
    got, stderr = run_job(job)
    assert got["killed"], "no executor was killed while the job ran"
    assert got["rows"] == got["entity_rows"]
    assert got["equal"], "the cluster's result differs from the file store's"
    assert "Lost executor" in stderr  # Spark saw the loss and recovered
