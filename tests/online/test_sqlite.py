"""What is SQLite's own in the embedded online store (``SqliteOnlineStore``): tables, WAL mode,
the project -> tables record, locks after a failed write, a lost database file. The behaviour
every online store shares (round trips, newer event wins, multi-view reads, drop, teardown)
is tested for all of them in the ``test_store_*.py`` suites.

The database is inspected through ``_core.SqliteStore.query`` (the store's own SQLite), never
Python's ``sqlite3``: two SQLite libraries in one process break each other's locks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from store_support import view

from banquet import FeatureStore, RepoConfig, _core
from banquet.config import SqliteOnlineConfig
from banquet.errors import StoreError
from banquet.online.base import rows_batch
from banquet.online.sqlite import SqliteOnlineStore, table_name

MakeRepo = Callable[..., Path]


def open_store(tmp_path: Path, project: str = "proj") -> SqliteOnlineStore:
    config = RepoConfig(
        project=project, online_store=SqliteOnlineConfig(path="data/online.db"), repo_path=tmp_path
    )
    return SqliteOnlineStore(config)


def sql(db: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query`` on the database file, through a connection of its own."""
    probe = _core.SqliteStore(str(db))
    try:
        return probe.query(query)  # type: ignore[no-any-return]
    finally:
        probe.close()


def tables(db: Path) -> set[str]:
    return {r[0] for r in sql(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.fixture
def store(tmp_path: Path) -> SqliteOnlineStore:
    s = open_store(tmp_path)
    s.create_view("proj", view("v"))
    yield s
    s.close()


def write(
    store: SqliteOnlineStore, rows: list[tuple[bytes, int, int, bytes]], v: str = "v"
) -> None:
    keys, ev, cr, blobs = (list(c) for c in zip(*rows, strict=True))
    store.write("proj", v, rows_batch(keys, ev, cr, blobs))


def read1(store: SqliteOnlineStore, keys: list[bytes], v: str = "v") -> list[bytes | None]:
    return store.read("proj", [(v, keys)])[0]


# --- tables and pragmas --------------------------------------------------------------------------


def test_create_view_makes_one_table_per_view(store: SqliteOnlineStore, tmp_path: Path) -> None:
    db = tmp_path / "data" / "online.db"
    assert db.is_file()
    assert tables(db) == {"proj:v", "banquet_views"}
    store.create_view("proj", view("v"))  # idempotent
    store.create_view("proj", view("w"))
    assert tables(db) == {"proj:v", "proj:w", "banquet_views"}
    cols = [(r[1], r[2], r[5]) for r in sql(db, 'PRAGMA table_info("proj:v")')]
    ddl = sql(db, "SELECT sql FROM sqlite_master WHERE name = 'proj:v'")[0][0]
    owned = sql(db, "SELECT project, view FROM banquet_views ORDER BY view")
    assert cols == [
        ("entity_key", "BLOB", 1),
        ("event_ts", "INTEGER", 0),
        ("created_ts", "INTEGER", 0),
        ("value", "BLOB", 0),
    ]
    assert "WITHOUT ROWID" in ddl
    assert owned == [("proj", "v"), ("proj", "w")]


def test_wal_mode_is_on(store: SqliteOnlineStore, tmp_path: Path) -> None:
    assert sql(tmp_path / "data" / "online.db", "PRAGMA journal_mode") == [("wal",)]
    assert store.query("PRAGMA journal_mode") == [("wal",)]
    assert store.query("PRAGMA synchronous") == [(1,)]  # NORMAL


def test_table_names_are_quoted() -> None:
    assert table_name("p", "v") == '"p:v"'
    assert table_name("p", 'a"b') == '"p:a""b"'


# --- errors --------------------------------------------------------------------------------------


def test_missing_table_is_a_store_error(store: SqliteOnlineStore) -> None:
    with pytest.raises(StoreError, match="'nope'.*banquet apply"):
        store.read("proj", [("v", [b"k"]), ("nope", [b"k"])])
    with pytest.raises(StoreError, match="'nope'"):
        store.write("proj", "nope", rows_batch([b"k"], [1], [0], [b"x"]))
    with pytest.raises(StoreError, match="'v'"):
        store.read("other_project", [("v", [b"k", b"j"])])
    # the connection is still usable after an error (no transaction left open)
    write(store, [(b"k", 1, 0, b"ok")])
    assert read1(store, [b"k"]) == [b"ok"]


def _lock_is_free(tmp_path: Path) -> bool:
    probe = _core.SqliteStore(str(tmp_path / "data" / "online.db"))
    try:
        probe.query("PRAGMA busy_timeout = 200")  # the pool hands back this same connection
        probe.query("BEGIN IMMEDIATE")  # a connection left in a transaction is not pooled
        return True
    except StoreError:
        return False
    finally:
        probe.close()


def test_a_failed_write_writes_nothing(store: SqliteOnlineStore, tmp_path: Path) -> None:
    write(store, [(b"a", 1, 0, b"old")])
    with pytest.raises(StoreError):
        # a NULL value violates NOT NULL in the middle of the batch
        store.write(
            "proj", "v", rows_batch([b"a", b"b", b"c"], [2, 2, 2], [0, 0, 0], [b"new", None, b"c"])
        )  # type: ignore[list-item]
    assert read1(store, [b"a", b"b", b"c"]) == [b"old", None, None]
    assert _lock_is_free(tmp_path)  # the transaction was rolled back, not left open

    def interrupted():  # type: ignore[no-untyped-def]
        yield b"new"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.write("proj", "v", rows_batch([b"a", b"b"], [2, 2], [0, 0], interrupted()))  # type: ignore[arg-type]
    assert read1(store, [b"a", b"b"]) == [b"old", None]
    assert _lock_is_free(tmp_path)
    write(store, [(b"a", 3, 0, b"newer")])
    assert read1(store, [b"a"]) == [b"newer"]


# --- drop and teardown -------------------------------------------------------------------------------


def test_drop_view_drops_the_table(store: SqliteOnlineStore, tmp_path: Path) -> None:
    write(store, [(b"k", 1, 0, b"a")])
    store.drop_view("proj", "v")
    assert tables(tmp_path / "data" / "online.db") == {"banquet_views"}


def test_teardown_removes_only_this_projects_tables(tmp_path: Path) -> None:
    db = tmp_path / "data" / "online.db"
    a, b = open_store(tmp_path, "alpha"), open_store(tmp_path, "beta")
    for name in ("v", "w"):
        a.create_view("alpha", view(name))
        b.create_view("beta", view(name))
    a.write("alpha", "v", rows_batch([b"k"], [1], [0], [b"alpha"]))
    b.write("beta", "v", rows_batch([b"k"], [1], [0], [b"beta"]))
    a.query("CREATE TABLE alpha__mine (x)")  # not made by banquet: left alone

    a.teardown("alpha")
    assert tables(db) == {"beta:v", "beta:w", "banquet_views", "alpha__mine"}
    assert b.read("beta", [("v", [b"k"])]) == [[b"beta"]]
    owned = sql(db, "SELECT project, view FROM banquet_views ORDER BY view")
    assert owned == [("beta", "v"), ("beta", "w")]
    a.teardown("alpha")  # idempotent
    a.close()
    b.close()


def test_projects_with_double_underscores_do_not_collide(tmp_path: Path) -> None:
    a, ab = open_store(tmp_path, "a"), open_store(tmp_path, "a__b")
    a.create_view("a", view("b__c"))
    ab.create_view("a__b", view("c"))
    a.write("a", "b__c", rows_batch([b"k"], [1], [0], [b"from a"]))
    ab.write("a__b", "c", rows_batch([b"k"], [1], [0], [b"from a__b"]))
    a.teardown("a")
    try:
        assert ab.read("a__b", [("c", [b"k"])]) == [[b"from a__b"]]
    finally:
        a.close()
        ab.close()


# --- through FeatureStore ------------------------------------------------------------------------------


def test_feature_store_teardown_keeps_other_projects(tmp_repo: MakeRepo) -> None:
    one = tmp_repo(project="one", name="one")
    two = tmp_repo(project="two", name="two")
    # both projects use the same online database file
    shared = one / "data" / "online_store.db"
    for repo in (one, two):
        yaml = repo / "feature_store.yaml"
        yaml.write_text(yaml.read_text().replace("path: data/online_store.db", f"path: {shared}"))
    s1, s2 = FeatureStore(repo_path=one), FeatureStore(repo_path=two)
    for s in (s1, s2):
        s.apply()
        s.materialize(
            datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
        )
    assert {
        "one:user_profile",
        "one:user_activity",
        "two:user_profile",
        "two:user_activity",
    } <= tables(shared)
    s1.teardown()
    assert tables(shared) == {"two:user_profile", "two:user_activity", "banquet_views"}
    resp = s2.get_online_features(["user_activity:clicks"], {"user_id": [1, 2]})
    assert resp.to_dict()["clicks"] == [5, 1]
    assert s1.list_feature_views() == []


def test_lost_database_file_is_recreated_by_materialize(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo()
    s = FeatureStore(repo_path=repo)
    s.apply()
    db = repo / "data" / "online_store.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    fresh = FeatureStore(repo_path=repo)
    fresh.materialize(
        datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)
    )
    assert fresh.get_online_features(["user_activity:clicks"], {"user_id": [3]}).to_dict()[
        "clicks"
    ] == [7]


def test_a_forked_child_opens_its_own_connections(store: SqliteOnlineStore) -> None:
    """SQLite connections do not survive fork: a child reconnects instead of using the
    parent's pooled ones, and the parent's keep working."""
    import os

    write(store, [(b"k", 1, 0, b"parent")])
    assert read1(store, [b"k"]) == [b"parent"]  # a connection is now pooled
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if it reads and writes through new connections
        try:
            ok = read1(store, [b"k"]) == [b"parent"]
            write(store, [(b"c", 1, 0, b"child")])
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert read1(store, [b"k", b"c"]) == [b"parent", b"child"]
