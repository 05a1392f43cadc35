"""Helpers of the tests that run on the Spark standalone cluster of `make services`: the
master's URL, checked, and a job run in a process of its own (one SparkContext per process:
the test run already holds a local[2] one) that prints one JSON line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest


def master_url() -> str:
    """The standalone master's URL (BANQUET_SPARK_MASTER), checked to accept connections."""
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


def run_job(args: list[str]) -> tuple[dict[str, Any], str]:
    """Runs ``python args...`` (the driver on loopback) and returns its last JSON line and
    its stderr; a failed run or one without a JSON line fails the test."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, env=env
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1]), proc.stderr
