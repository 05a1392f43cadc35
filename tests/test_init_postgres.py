"""`banquet init NAME --template postgres` end to end against the local Postgres: scaffold,
load the example data, apply, then the repo's example.py (training sets from a DataFrame and
from SQL, materialize, online features), every step as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.postgres

_SCRIPT = Path(sys.executable).with_name("banquet")
_COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "banquet.cli"]


@pytest.fixture
def pg_env(pg_dsn: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(pg_dsn)
    return {
        **os.environ,
        "NO_COLOR": "1",
        "BANQUET_PG_HOST": str(d.get("host", "127.0.0.1")),
        "BANQUET_PG_PORT": str(d.get("port", 5432)),
        "BANQUET_PG_DB": str(d.get("dbname")),
        "BANQUET_PG_USER": str(d.get("user")),
        "BANQUET_PG_PASSWORD": str(d.get("password", "")),
    }


@pytest.fixture
def project(pg_dsn: str) -> Iterator[str]:
    """A unique project name; its Postgres schema is dropped afterwards."""
    import psycopg

    name = f"pgtpl_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')  # type: ignore[arg-type]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_postgres_template_end_to_end(tmp_path: Path, pg_env: dict[str, str], project: str) -> None:
    out = run([*_COMMAND, "init", project, "--template", "postgres"], tmp_path, pg_env)
    assert "python load_data.py && banquet apply" in out
    repo = tmp_path / project

    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    assert config["offline_store"]["type"] == "postgres"
    assert config["online_store"]["type"] == "postgres"
    assert config["registry"]["registry_type"] == "sql"
    assert "${BANQUET_PG_PASSWORD}" in config["registry"]["path"]  # no secret in the file
    assert config["offline_store"]["db_schema"] == project

    loaded = run([sys.executable, "load_data.py"], repo, pg_env)
    assert f"into {project}.transactions" in loaded and f"into {project}.profiles" in loaded
    applied = run([*_COMMAND, "apply"], repo, pg_env)
    assert "user_transactions" in applied
    example = run([sys.executable, "example.py"], repo, pg_env)
    assert "Training set from SQL entity rows:" in example
    assert "Online features:" in example
    online = example.split("Online features:")[1]
    assert "transaction_count: [" in online and "None, None" not in online.split("\n")[1]

    listed = run([*_COMMAND, "feature-views", "list"], repo, pg_env)
    assert "user_profile" in listed

    # the registry is in Postgres: a second checkout of the repo sees what was applied
    other = tmp_path / "other"
    other.mkdir()
    (other / "feature_store.yaml").write_text((repo / "feature_store.yaml").read_text())
    assert "user_transactions" in run([*_COMMAND, "feature-views", "list"], other, pg_env)


def test_postgres_template_names_a_missing_environment_variable(
    tmp_path: Path, pg_env: dict[str, str], project: str
) -> None:
    run([*_COMMAND, "init", project, "--template", "postgres"], tmp_path, pg_env)
    env = {k: v for k, v in pg_env.items() if k != "BANQUET_PG_HOST"}
    proc = subprocess.run(
        [*_COMMAND, "apply"],
        cwd=tmp_path / project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert "BANQUET_PG_HOST" in proc.stderr and "Traceback" not in proc.stderr
