"""The command's Feast flags and subcommands (issue #16, Deliver 5): `serve -h HOST -p PORT`
(only --help is help there), `<kind> describe NAME`, and `teardown` asking only at a
terminal. Run as `banquet`; `feast` is the same command (tests/feast_compat)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

from test_cli import _COMMAND, fails, run

MakeRepo = Callable[..., Path]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_takes_feasts_short_flags(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    run("apply", cwd=repo)
    port = _free_port()
    log = repo / "server.log"
    with (
        log.open("w") as err,
        subprocess.Popen(
            [
                *_COMMAND,
                "serve",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--no-access-log",
                "-t",
                "http",
            ],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=err,
        ) as server,
    ):
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    url = f"http://127.0.0.1:{port}/health"
                    with urllib.request.urlopen(url, timeout=2) as r:
                        assert r.status == 200
                        break
                except OSError:
                    assert server.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "the server did not answer within 60 s"
                    time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_serve_help_is_only_long(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    out = run("serve", "--help", cwd=repo).stdout
    assert "-h, --host" in out and "-p, --port" in out and "--help" in out
    proc = run("serve", "-h", cwd=repo, ok=False)  # -h wants a value now
    assert proc.returncode == 2 and "requires an argument" in proc.stderr
    assert run("--help", cwd=repo).stdout == run("-h", cwd=repo).stdout  # the group keeps -h
    assert "TLS" in run("serve", "--key", "k.pem", "--cert", "c.pem", cwd=repo, ok=False).stderr


def test_describe(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    run("apply", cwd=repo)
    view = yaml.safe_load(run("feature-views", "describe", "user_profile", cwd=repo).stdout)
    assert view["name"] == "user_profile" and view["tags"] == {"team": "growth"}
    entity = yaml.safe_load(run("entities", "describe", "user", cwd=repo).stdout)
    assert entity["name"] == "user" and entity["description"] == "a customer"
    service = yaml.safe_load(run("feature-services", "describe", "model_v1", cwd=repo).stdout)
    assert service["name"] == "model_v1"
    source = yaml.safe_load(run("data-sources", "describe", "profiles", cwd=repo).stdout)
    assert source["name"] == "profiles"
    line = fails("feature-views", "describe", "nope", cwd=repo)
    assert "'nope' is not registered" in line and "user_profile" in line


def test_teardown_runs_without_asking_when_not_at_a_terminal(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    run("apply", cwd=repo)
    out = run("teardown", cwd=repo).stdout  # stdin is /dev/null: a script, as Feast's runs it
    assert "torn down" in out
    assert json.loads(run("registry-dump", cwd=repo).stdout)["feature_views"] == {}


def test_teardown_asks_at_a_terminal(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    run("apply", cwd=repo)
    primary, secondary = os.openpty()
    try:
        proc = subprocess.Popen(
            [*_COMMAND, "teardown"],
            cwd=repo,
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(primary, b"n\n")
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(primary)
        os.close(secondary)
    assert proc.returncode == 1 and "Delete all online data" in out
    assert set(json.loads(run("registry-dump", cwd=repo).stdout)["feature_views"]) == {
        "user_activity",
        "user_profile",
    }


def test_feasts_environment_variables_and_log_level(tmp_repo: MakeRepo, tmp_path: Path) -> None:
    repo = tmp_repo()
    env = {**os.environ, "NO_COLOR": "1", "FEATURE_REPO_DIR_ENV_VAR": str(repo)}
    proc = subprocess.run(
        [*_COMMAND, "--log-level", "debug", "apply"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "+ Feature view user_profile" in proc.stdout
    (repo / "feature_store.yaml").rename(tmp_path / "prod.yaml")
    env = {**os.environ, "FEAST_FS_YAML_FILE_PATH": str(tmp_path / "prod.yaml")}
    proc = subprocess.run(
        [*_COMMAND, "-c", str(repo), "entities", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "user_id" in proc.stdout
