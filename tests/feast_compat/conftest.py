"""Fixtures of the Feast compatibility suite (issue #16).

``real_feast_python``: an interpreter with a real Feast installed, for the tests marked
``real_feast`` that check this suite's assumptions against Feast itself. It is
$BANQUET_REAL_FEAST_PYTHON, else the benchmarks' peer venv (benches/.venv-peers) when it holds
Feast; with neither, those tests are skipped with the reason (the rest never need Feast).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_feast: compares with a real Feast installed in another interpreter"
    )


@pytest.fixture(scope="session")
def real_feast_python() -> str:
    candidates = [os.environ.get("BANQUET_REAL_FEAST_PYTHON", "")]
    candidates.append(str(ROOT / "benches" / ".venv-peers" / "bin" / "python"))
    for python in candidates:
        if python and Path(python).exists():
            probe = subprocess.run(
                [python, "-c", "import importlib.metadata as m; print(m.version('feast'))"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode == 0:
                return python
    pytest.skip("no interpreter with a real Feast (set BANQUET_REAL_FEAST_PYTHON)")


@pytest.fixture(scope="session")
def feast_command() -> list[str]:
    """The `feast` console script banquet-feast installs (`make develop` installs it)."""
    script = Path(sys.executable).with_name("feast")
    assert script.exists(), "no `feast` command in this venv: run `make develop`"
    return [str(script)]
