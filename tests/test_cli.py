"""The ``banquet`` command end to end, run as a subprocess in temporary folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import banquet

MakeRepo = Callable[..., Path]

_SCRIPT = Path(sys.executable).with_name("banquet")
_COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "banquet.cli"]


def run(*args: str | Path, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.run(
        [*_COMMAND, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    if ok:
        assert proc.returncode == 0, f"banquet {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def fails(*args: str | Path, cwd: Path) -> str:
    """Run a command that must fail the banquet way: exit 1, nothing on stdout, ONE line on
    stderr, no traceback. Returns that line."""
    proc = run(*args, cwd=cwd, ok=False)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


def _columns(table: str) -> list[list[str]]:
    return [line.split() for line in table.strip().splitlines()]


# --- the main path -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `demo/`, made by `banquet init demo`."""
    parent = tmp_path_factory.mktemp("cli")
    out = run("init", "demo", cwd=parent).stdout
    assert "Created feature repo" in out and "demo" in out
    return parent


def test_version(tmp_path: Path) -> None:
    out = run("version", cwd=tmp_path).stdout
    assert out.strip() == f"banquet {banquet.__version__}"


def test_help(tmp_path: Path) -> None:
    out = run("--help", cwd=tmp_path).stdout
    for word in (
        "init",
        "plan",
        "apply",
        "registry-dump",
        "entities",
        "feature-views",
        "feature-services",
        "data-sources",
        "version",
        "--chdir",
        "--feature-store-yaml",
        "--verbose",
    ):
        assert word in out


def test_init_makes_a_working_repo(demo_parent: Path) -> None:
    repo = demo_parent / "demo"
    assert (repo / "feature_store.yaml").is_file()
    assert (repo / "features.py").is_file() and (repo / "example.py").is_file()
    assert "project: demo" in (repo / "feature_store.yaml").read_text()
    assert (repo / "data" / "transactions.parquet").is_file()
    assert list((repo / "data").rglob("*.parquet"))


def test_plan_apply_and_list(demo_parent: Path) -> None:
    repo = demo_parent / "demo"
    plan = run("plan", cwd=repo).stdout
    assert "+ Feature view user_transactions" in plan and "to add" in plan
    assert not (repo / "data" / "registry.db").exists()  # plan writes nothing

    applied = run("apply", cwd=repo).stdout
    assert applied.startswith("Applied:")
    for line in (
        "+ Entity user",
        "+ Data source transactions",
        "+ Feature view user_transactions",
        "+ Feature view user_profile",
        "+ Feature service fraud_model_v1",
    ):
        assert line in applied
    assert (repo / "data" / "registry.db").is_file()

    again = run("apply", cwd=repo).stdout
    assert again.strip() == "No changes: the registry already matches the repo."
    assert (
        run("plan", cwd=repo).stdout.strip() == "No changes: the registry already matches the repo."
    )

    dump = json.loads(run("registry-dump", cwd=repo).stdout)
    assert dump["project"] == "demo" and dump["version"] == 1
    assert set(dump["feature_views"]) == {"user_transactions", "user_profile"}
    assert set(dump["feature_services"]) == {"fraud_model_v1"}
    assert dump["entities"]["user"]["join_key"] == "user_id"

    entities = _columns(run("entities", "list", cwd=repo).stdout)
    assert entities[0][:3] == ["NAME", "JOIN", "KEY"]
    assert entities[1][:2] == ["user", "user_id"]

    views = run("feature-views", "list", cwd=repo).stdout.splitlines()
    assert views[0].split()[:3] == ["NAME", "ENTITIES", "FEATURES"]
    assert [v.split()[0] for v in views[1:]] == ["user_profile", "user_transactions"]
    assert "transaction_count,avg_spend" in views[2]

    services = _columns(run("feature-services", "list", cwd=repo).stdout)
    assert services[1][0] == "fraud_model_v1"
    assert "user_transactions:transaction_count" in services[1][1]
    assert "user_profile:age" in services[1][1] and "user_profile:segment" not in services[1][1]

    sources = _columns(run("data-sources", "list", cwd=repo).stdout)
    assert sources[0] == ["NAME", "KIND", "WHERE"]
    assert ["transactions", "FileSource", "data/transactions.parquet"] in sources
    assert [s[:2] for s in sources[1:]] == [
        ["profile_push", "PushSource"],
        ["transactions", "FileSource"],
    ]


def test_chdir(demo_parent: Path) -> None:
    run("--chdir", "demo", "apply", cwd=demo_parent)
    for flag in ("-c", "--chdir"):
        out = run(flag, "demo", "feature-views", "list", cwd=demo_parent).stdout
        assert "user_transactions" in out
    assert (
        json.loads(run("-c", "demo", "registry-dump", cwd=demo_parent).stdout)["project"] == "demo"
    )
    # init inside another folder
    (demo_parent / "elsewhere").mkdir()
    run("-c", "elsewhere", "init", "nested", cwd=demo_parent)
    assert (demo_parent / "elsewhere" / "nested" / "feature_store.yaml").is_file()


# --- edits through the CLI ---------------------------------------------------------------------


def test_edit_and_delete(tmp_repo: MakeRepo, repo_features: str) -> None:
    repo = tmp_repo()
    run("apply", cwd=repo)
    features = repo / "features.py"
    features.write_text(repo_features.replace('description="a customer"', 'description="a buyer"'))
    plan = run("plan", cwd=repo).stdout
    assert "~ Entity user (description)" in plan and "0 to add, 1 to change, 0 to remove" in plan
    assert "~ Entity user (description)" in run("apply", cwd=repo).stdout
    assert "a buyer" in run("entities", "list", cwd=repo).stdout

    features.write_text(repo_features + "\ndel model_v1\n")
    out = run("apply", cwd=repo).stdout
    assert "- Feature service model_v1" in out
    assert _columns(run("feature-services", "list", cwd=repo).stdout) == [["NAME", "FEATURES"]]


def test_teardown(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    run("apply", cwd=repo)
    out = run("teardown", "--yes", cwd=repo).stdout
    assert "test_project" in out and "torn down" in out
    assert json.loads(run("registry-dump", cwd=repo).stdout)["feature_views"] == {}
    assert "+ Feature view user_profile" in run("apply", cwd=repo).stdout


# --- -f/--feature-store-yaml -------------------------------------------------------------------


def test_feature_store_yaml_option(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    (repo / "prod.yaml").write_text(
        (repo / "feature_store.yaml")
        .read_text()
        .replace("project: test_project", "project: prod")
        .replace("data/registry.db", "data/prod_registry.db")
    )
    for flag in ("-f", "--feature-store-yaml"):
        out = run(flag, "prod.yaml", "plan", cwd=repo).stdout
        assert "+ Feature view user_profile" in out
    run("-f", "prod.yaml", "apply", cwd=repo)
    assert (repo / "data" / "prod_registry.db").is_file()
    assert not (repo / "data" / "registry.db").exists()
    assert json.loads(run("-f", "prod.yaml", "registry-dump", cwd=repo).stdout)["project"] == "prod"
    # from elsewhere, the yaml's folder is the repo
    out = run("-f", repo / "prod.yaml", "feature-views", "list", cwd=repo.parent).stdout
    assert "user_profile" in out


def test_chdir_and_a_yaml_elsewhere(tmp_repo: MakeRepo, tmp_path: Path) -> None:
    """`-c REPO -f FILE`: the definitions come from REPO, the settings from FILE."""
    repo = tmp_repo()
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "staging.yaml").write_text(
        "project: staging\n"
        f"registry: {repo / 'data' / 'staging_registry.db'}\n"
        f"online_store: {{type: sqlite, path: {repo / 'data' / 'staging_online.db'}}}\n"
    )
    out = run("-c", repo, "-f", conf / "staging.yaml", "apply", cwd=tmp_path).stdout
    assert "+ Feature view user_profile" in out
    dump = json.loads(
        run("-c", repo, "-f", conf / "staging.yaml", "registry-dump", cwd=tmp_path).stdout
    )
    assert dump["project"] == "staging" and set(dump["feature_views"]) == {
        "user_profile",
        "user_activity",
    }


# --- errors: one line saying what to fix; a traceback only with --verbose -----------------------


def test_broken_yaml(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(yaml="project: p\nonline_store: {type: sqlite\n")
    line = fails("apply", cwd=repo)
    assert "feature_store.yaml" in line and "YAML" in line and "line" in line


def test_unknown_yaml_key(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(yaml="project: p\nonline_store: {type: sqlite, paht: x.db}\n")
    line = fails("plan", cwd=repo)
    assert "feature_store.yaml" in line and "'online_store.paht'" in line


def test_unset_env_var(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(yaml="project: p\nregistry: ${BANQUET_TEST_SURELY_UNSET}/r.db\n")
    line = fails("registry-dump", cwd=repo)
    assert "BANQUET_TEST_SURELY_UNSET" in line and "'registry'" in line


def test_no_repo_here(tmp_path: Path) -> None:
    line = fails("apply", cwd=tmp_path)
    assert "feature_store.yaml" in line and "banquet init" in line
    line = fails("-c", "missing", "entities", "list", cwd=tmp_path)
    assert "feature_store.yaml" in line


def test_typo_in_a_repo_file(tmp_repo: MakeRepo, repo_features: str) -> None:
    repo = tmp_repo(
        {"features.py": repo_features.replace('Field(name="clicks"', 'Feild(name="clicks"')}
    )
    line = fails("apply", cwd=repo)
    assert "features.py" in line and "NameError" in line and "Feild" in line
    assert not (repo / "data" / "registry.db").exists()

    verbose = run("--verbose", "apply", cwd=repo, ok=False)
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1] == line
    assert run("-v", "apply", cwd=repo, ok=False).stderr.count("Traceback") >= 1


def test_definition_error_in_a_repo_file(tmp_repo: MakeRepo, repo_features: str) -> None:
    repo = tmp_repo(
        {"features.py": repo_features.replace("ttl=timedelta(days=30)", "ttl=timedelta(days=-1)")}
    )
    line = fails("plan", cwd=repo)
    assert "features.py" in line and "'user_profile'" in line and "negative" in line


def test_missing_source_column(tmp_repo: MakeRepo, repo_features: str) -> None:
    repo = tmp_repo({"features.py": repo_features.replace('name="score"', 'name="scroe"')})
    line = fails("apply", cwd=repo)
    assert "'user_activity'" in line and "'scroe'" in line


def test_corrupt_registry(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    (repo / "data" / "registry.db").write_text("{not json")
    line = fails("feature-views", "list", cwd=repo)
    assert "registry" in line and "not valid JSON" in line


def test_init_errors(tmp_path: Path) -> None:
    run("init", "taken", cwd=tmp_path)
    line = fails("init", "taken", cwd=tmp_path)
    assert "already exists" in line
    line = fails("init", "bad-name", cwd=tmp_path)
    assert "'bad-name'" in line
    assert not (tmp_path / "bad-name").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = run("no-such-command", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "No such command" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_blocked_store_folder_is_one_line_too(tmp_repo: MakeRepo) -> None:
    # the online store's folder cannot be created: a file is in the way
    repo = tmp_repo(yaml="project: p\nonline_store: {type: sqlite, path: features.py/online.db}\n")
    line = fails("apply", cwd=repo)
    assert "SQLite online store" in line and "features.py" in line
    verbose = run("--verbose", "apply", cwd=repo, ok=False)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_multi_line_messages_are_joined(tmp_repo: MakeRepo, repo_features: str) -> None:
    repo = tmp_repo(
        {"features.py": repo_features + "\nraise ValueError('first line\\nsecond line')\n"}
    )
    line = fails("plan", cwd=repo)
    assert "features.py" in line and "first line second line" in line
