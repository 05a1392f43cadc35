"""What only the SQL registry does: its ``registry.path`` forms, typed connection errors that
hide the password, tables created on first write (not on read), rows rewritten only when they
changed, and a feature repo configured with ``registry_type: sql`` end to end (apply, plan,
list, materialize, the CLI's registry-dump, a second store's cache, teardown).

Needs the local Postgres (``make services``); each test has its own schema or project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from banquet import FeatureStore
from banquet.config import RepoConfig
from banquet.entity import Entity
from banquet.errors import ConfigError, RegistryError, RegistryUnavailable
from banquet.registry import open_registry
from banquet.registry.base import State
from banquet.registry.sql import OBJECTS_TABLE, PROJECTS_TABLE, SqlRegistry, parse_path

pytestmark = pytest.mark.postgres

MakeRepo = Callable[..., Path]


@pytest.fixture
def reg(pg_schema_dsn: str) -> Iterator[SqlRegistry]:
    registry = SqlRegistry(pg_schema_dsn)
    yield registry
    registry.close()


def _add_entity(name: str, description: str = "") -> Any:
    def change(state: State) -> bool:
        state["entities"][name] = Entity(name=name, description=description).to_dict()
        return True

    return change


# --- registry.path -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "postgresql://u:pw@db.example:5433/feast",
        "postgres://u:pw@db.example:5433/feast",
        "postgresql+psycopg://u:pw@db.example:5433/feast",  # as written for Feast's SQLAlchemy
        "postgresql+psycopg2://u:pw@db.example:5433/feast",
    ],
)
def test_path_forms(path: str) -> None:
    url, schema, address = parse_path(path)
    assert url == "postgresql://u:pw@db.example:5433/feast"
    assert schema is None
    assert address == "postgresql://u@db.example:5433/feast"


def test_path_schema_and_options() -> None:
    url, schema, address = parse_path("postgresql://u:pw@h/db?sslmode=disable&schema=meta")
    assert (url, schema) == ("postgresql://u:pw@h/db?sslmode=disable", "meta")
    assert address == "postgresql://u@h/db (schema meta)"
    assert "pw" not in repr(SqlRegistry("postgresql://u:pw@h/db"))


@pytest.mark.parametrize(
    "path", ["sqlite:///registry.db", "mysql://u:secret@h/db", "data/registry.db", "u:secret@h/db"]
)
def test_path_that_is_not_postgres(path: str) -> None:
    with pytest.raises(ConfigError, match=r"postgresql://USER:PASSWORD@HOST:PORT/DATABASE") as e:
        SqlRegistry(path)
    assert "secret" not in str(e.value)


def test_open_registry_from_config(tmp_path: Path, pg_schema_dsn: str) -> None:
    cfg = RepoConfig.from_dict(
        {"project": "p", "registry": {"registry_type": "sql", "path": pg_schema_dsn}},
        repo_path=tmp_path,
    )
    reg = open_registry(cfg)
    assert isinstance(reg, SqlRegistry)
    reg.close()


def test_database_url_without_registry_type_sql(tmp_path: Path) -> None:
    cfg = RepoConfig.from_dict(
        {"project": "p", "registry": {"path": "postgresql://u:pw@h/db"}}, repo_path=tmp_path
    )
    with pytest.raises(ConfigError, match="add `registry_type: sql`"):
        open_registry(cfg)
    assert not list(tmp_path.iterdir())  # no file named after the URL


# --- connection errors -------------------------------------------------------------------------


def test_unreachable_server_is_a_typed_error_without_the_password() -> None:
    reg = SqlRegistry("postgresql://someone:hunter2pw@127.0.0.1:1/meta")
    for call in (
        lambda: reg.read("p"),
        lambda: reg.projects(),
        lambda: reg.update("p", _add_entity("a")),
        lambda: reg.delete_project("p"),
    ):
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as info:
            call()
        assert time.monotonic() - started < 5  # refused at once, not a long wait
        message = str(info.value)
        assert "postgresql://someone@127.0.0.1:1/meta" in message
        assert "hunter2pw" not in message
        assert isinstance(info.value, ConnectionError) and isinstance(info.value, RegistryError)


def test_unknown_database_is_a_registry_error(pg_dsn: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    u = urlsplit(pg_dsn)
    bad = urlunsplit((u.scheme, u.netloc, "/no_such_db_banquet", "", ""))
    with pytest.raises(RegistryError, match="no_such_db_banquet.*does not exist") as info:
        SqlRegistry(bad).read("p")
    assert not isinstance(info.value, RegistryUnavailable)  # retrying will not help
    assert "fix registry.path" in str(info.value)


# --- tables --------------------------------------------------------------------------------------


def _schema_exists(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regnamespace(%s)", [schema]).fetchone()
    return row is not None and row[0] is not None


def test_reading_creates_nothing(reg: SqlRegistry, pg_dsn: str) -> None:
    assert reg.schema is not None
    assert reg.read("p")["version"] == 0
    assert reg.projects() == []
    assert reg.read_if_changed("p", 0, None) is None
    assert not _schema_exists(pg_dsn, reg.schema)
    assert reg.update("p", lambda state: False)["version"] == 0  # a write creates the tables
    assert _schema_exists(pg_dsn, reg.schema)
    assert reg.projects() == []


def _rows(dsn: str, schema: str) -> dict[tuple[str, str], tuple[Any, int]]:
    """(kind, name) -> (record, xmin: the transaction that last wrote the row)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            sql.SQL("SELECT kind, name, record, xmin::text::bigint FROM {}").format(
                sql.Identifier(schema, OBJECTS_TABLE)
            )
        ).fetchall()
    return {(k, n): (r, x) for k, n, r, x in rows}


def test_one_row_per_object_and_only_changed_rows_are_written(
    reg: SqlRegistry, pg_dsn: str
) -> None:
    assert reg.schema is not None

    def first(state: State) -> bool:
        for name in ("a", "b", "c"):
            _add_entity(name)(state)
        return True

    reg.update("p", first)
    reg.update("other", _add_entity("a"))
    before = _rows(pg_dsn, reg.schema)
    assert set(before) == {("entities", n) for n in "abc"}  # 'other' has the same key names
    assert before[("entities", "a")][0] == Entity(name="a").to_dict()

    def second(state: State) -> bool:
        _add_entity("a")(state)  # the same record again: not a change
        _add_entity("b", description="new")(state)
        del state["entities"]["c"]
        return True

    reg.update("p", second)
    after = _rows(pg_dsn, reg.schema)
    assert set(after) == {("entities", "a"), ("entities", "b")}
    assert after[("entities", "a")] == before[("entities", "a")]  # untouched row
    assert after[("entities", "b")][1] != before[("entities", "b")][1]  # rewritten
    assert after[("entities", "b")][0]["description"] == "new"
    with psycopg.connect(pg_dsn) as conn:
        projects = conn.execute(
            sql.SQL("SELECT project, version FROM {} ORDER BY project").format(
                sql.Identifier(reg.schema, PROJECTS_TABLE)
            )
        ).fetchall()
    assert projects == [("other", 1), ("p", 2)]


def test_many_first_writers_in_fresh_schemas(pg_dsn: str) -> None:
    """Table creation is idempotent: a second registry on existing tables, and one on a
    schema another registry created, both work."""
    schema = f"test_reg_{uuid.uuid4().hex[:12]}"
    dsn = f"{pg_dsn}{'&' if '?' in pg_dsn else '?'}schema={schema}"
    try:
        regs = [SqlRegistry(dsn) for _ in range(3)]
        for i, r in enumerate(regs):
            r.update(f"p{i}", _add_entity("a"))
        assert regs[0].projects() == ["p0", "p1", "p2"]
        for r in regs:
            r.close()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# --- a feature repo with registry_type: sql ------------------------------------------------------

_YAML = """\
project: {project}
registry:
  registry_type: sql
  path: ${BANQUET_PG_DSN}
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
"""

_CLI = Path(sys.executable).with_name("banquet")


def _cli(repo: Path, *args: str) -> str:
    command = [str(_CLI)] if _CLI.exists() else [sys.executable, "-m", "banquet.cli"]
    proc = subprocess.run(
        [*command, *args],
        cwd=repo,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def sql_repo(tmp_repo: MakeRepo, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A default repo whose registry is the local Postgres (the default schema), under a
    project name of its own; its registry records are deleted afterwards."""
    monkeypatch.setenv("BANQUET_PG_DSN", pg_dsn)
    project = f"sqlreg_{uuid.uuid4().hex[:10]}"
    repo = tmp_repo(yaml=_YAML, project=project)
    yield repo
    reg = SqlRegistry(pg_dsn)
    reg.delete_project(project)
    reg.close()


def test_feature_store_end_to_end(sql_repo: Path, pg_dsn: str) -> None:
    out = _cli(sql_repo, "apply")
    assert "user_profile" in out
    store = FeatureStore(repo_path=sql_repo)
    project = store.project
    assert isinstance(store.registry, SqlRegistry)
    assert project in SqlRegistry(pg_dsn).projects()

    # plan: nothing to change after apply; list and get read the SQL registry
    assert store.plan().empty
    assert sorted(v.name for v in store.list_feature_views()) == ["user_activity", "user_profile"]
    assert store.get_feature_service("model_v1").name == "model_v1"
    assert store.get_entity("user").join_key == "user_id"

    # materialization records its interval in the project's row
    end = datetime(2024, 1, 2, tzinfo=timezone.utc)
    store.materialize(datetime(2024, 1, 1, tzinfo=timezone.utc), end)
    intervals = SqlRegistry(pg_dsn).read(project)["materializations"]
    assert set(intervals) == {"user_activity", "user_profile"}
    end_us = int(end.timestamp() * 1_000_000)
    assert all(ivs[-1][1] == end_us for ivs in intervals.values())
    online = store.get_online_features(["user_activity:clicks"], [{"user_id": 1}]).to_dict()
    assert online["clicks"] == [5]

    # the CLI's registry-dump prints what the tables hold
    dump = json.loads(_cli(sql_repo, "registry-dump"))
    assert dump["project"] == project
    assert sorted(dump["feature_views"]) == ["user_activity", "user_profile"]
    assert dump["materializations"] == intervals
    assert dump["version"] == store.registry.read(project)["version"]

    # teardown removes the project's records
    store.teardown()
    assert project not in SqlRegistry(pg_dsn).projects()
    assert FeatureStore(repo_path=sql_repo).list_feature_views() == []


def test_cache_reuses_the_catalog_until_the_version_changes(sql_repo: Path) -> None:
    reader = FeatureStore(repo_path=sql_repo)  # cache_ttl_seconds: 60 (the default)

    def expire() -> None:  # as if the ttl had passed
        reader.catalog().loaded_at -= reader.config.registry.cache_ttl_seconds + 1

    # allow_cache=True: the cached catalog (Feast's default, False, re-reads every call)
    assert reader.list_feature_views(allow_cache=True) == []
    FeatureStore(repo_path=sql_repo).apply()
    assert reader.list_feature_views(allow_cache=True) == []  # still cached
    expire()
    assert len(reader.list_feature_views(allow_cache=True)) == 2  # version changed: re-read
    catalog = reader.catalog()
    expire()
    assert reader.catalog() is catalog  # expired, but the version is the same: kept
    assert time.monotonic() - catalog.loaded_at < 5  # ... and fresh for another ttl


def test_two_processes_apply_different_objects(sql_repo: Path, pg_dsn: str) -> None:
    """`FeatureStore.apply([...])` from two OS processes at once: both objects land."""
    script = (
        "import sys\n"
        "from banquet import Entity, FeatureStore\n"
        "store = FeatureStore(repo_path=sys.argv[1])\n"
        "store.apply([Entity(name=sys.argv[2], join_keys=[sys.argv[2] + '_id'])])\n"
    )
    env = {**os.environ, "BANQUET_PG_DSN": pg_dsn}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(sql_repo), f"e{i}"], env=env)
        for i in range(3)
    ]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    store = FeatureStore(repo_path=sql_repo)
    assert sorted(e.name for e in store.list_entities()) == ["e0", "e1", "e2"]
    assert store.registry.read(store.project)["version"] == 3
