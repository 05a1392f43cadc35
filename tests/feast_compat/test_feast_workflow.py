"""The example repo of `feast init` (this suite's copy, feast_template.py) runs on banquet
through the `feast` import name and command: its workflow script exits 0 and serves the
values it wrote, Feast 0.67's Map / Json / Struct features, label view and logging config
included (issue #16, Deliver 7 and 2)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from feast_template import write_template


def _run_workflow(repo: Path, python: str) -> subprocess.CompletedProcess[str]:
    """The script as a user runs it, with ``python``'s `feast` command first on PATH."""
    env = {**os.environ, "PATH": f"{Path(python).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [python, "test_workflow.py"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _online_sections(out: str) -> dict[str, dict[str, str]]:
    """Each "--- online features ... ---" section's printed ``key : values`` lines."""
    sections: dict[str, dict[str, str]] = {}
    for title, body in re.findall(r"--- (online features[^\n]*) ---\n(.*?)(?=\n---|\Z)", out, re.S):
        lines = (line.split("  :  ", 1) for line in body.splitlines() if "  :  " in line)
        sections[title] = {k: v for k, v in lines}
    return sections


def _value(printed: str | None) -> object:
    """A printed column (``[1.0, {'a': 'b'}]``) as a Python value."""
    if printed is None:
        return None
    try:
        return ast.literal_eval(printed)
    except (ValueError, SyntaxError):  # e.g. nan: compare the text
        return printed


def test_template_workflow_runs_unmodified(tmp_path: Path) -> None:
    repo = write_template(tmp_path)
    proc = _run_workflow(repo, sys.executable)
    out = proc.stdout
    assert "Applied:" in out and "torn down" in out
    # after the push, driver 1001's fresh values are the pushed ones
    after_push = out.split("--- online features after the push ---")[1]
    assert re.search(r"conv_rate  :  \[1\.0, ", after_push), after_push
    assert re.search(r"avg_daily_trips  :  \[1000, ", after_push), after_push
    assert re.search(r"conv_rate_plus_val1  :  \[1001\.0, ", after_push), after_push
    # Map / Json / Struct values pushed as dicts and JSON text are served as Python objects
    assert "driver_profile  :  [{'name': 'driver_1001_updated', 'age': '30'}, " in after_push
    assert "driver_config  :  [{'max_distance_km': 500, 'preferred_zones': ['north']}, " in (
        after_push
    )
    assert "driver_metadata  :  [{'rating': '5.0', 'vehicle_type': 'truck'}, " in after_push
    # the materialized view served both drivers (values, not None)
    served = out.split("--- online features ---")[1].split("---")[0]
    acc = re.search(r"acc_rate  :  \[(.*)\]", served)
    assert acc and "None" not in acc.group(1), served
    # teardown ran from the script (no terminal): the registry is empty afterwards
    assert "Error" not in proc.stderr


@pytest.mark.slow
@pytest.mark.real_feast
def test_template_workflow_serves_what_feast_serves(tmp_path: Path, real_feast_python: str) -> None:
    """The same repo and data under a real Feast (its own `feast` command): every online
    value Feast prints, banquet prints too (Map / Json / Struct values included). (banquet
    also echoes the request fields; that output shape is issue #16's Deliver 4.)"""
    repo = write_template(tmp_path / "banquet")
    feast_repo = tmp_path / "feast" / "feature_repo"
    shutil.copytree(repo, feast_repo)
    ours = _online_sections(_run_workflow(repo, sys.executable).stdout)
    theirs = _online_sections(_run_workflow(feast_repo, real_feast_python).stdout)
    assert len(theirs) == 4 and ours.keys() == theirs.keys()
    for title, values in theirs.items():
        # compared as values: Feast's Map / Struct key order is its protobuf map's, which
        # varies between processes (banquet's: sorted keys / the Struct's field order)
        assert {k: _value(ours[title].get(k)) for k in values} == {
            k: _value(v) for k, v in values.items()
        }, title
