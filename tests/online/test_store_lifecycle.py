"""Every online store: drop_view, teardown of exactly one project (names that prefix each
other, foreign objects left alone), on fresh and used backends."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from store_support import read1, view

from banquet.online.base import OnlineStore, rows_batch

if TYPE_CHECKING:
    from conftest import Backend


# --- drop and teardown ------------------------------------------------------------------------------


def test_drop_view(backend: Backend, store: OnlineStore) -> None:
    p = backend.project
    store.create_view(p, view("w"))
    keys = [b"k%d" % i for i in range(2_100)]  # more than one SCAN batch on Redis
    store.write(p, "v", rows_batch(keys, [1] * len(keys), [0] * len(keys), keys))
    store.write(p, "w", rows_batch(keys[:10], [1] * 10, [0] * 10, [b"w"] * 10))
    store.drop_view(p, "v")
    store.drop_view(p, "v")  # idempotent
    store.drop_view(p, "never_made")
    assert store.read(p, [("w", keys[:11])]) == [[b"w"] * 10 + [None]]  # the other view stays
    store.create_view(p, view("v"))
    assert read1(store, p, keys[:3]) == [None, None, None]  # recreated storage starts empty
    if backend.is_redis:  # hashes emptied by the drop are gone, not left behind empty
        assert len(backend.owned(p)) == 10


def test_drop_and_teardown_on_a_fresh_backend(backend: Backend) -> None:
    s = backend.open()
    s.drop_view(backend.project, "v")
    s.teardown(backend.project)


def test_teardown_removes_exactly_this_projects_data(backend: Backend) -> None:
    alpha, beta = backend.project, backend.new_project()
    a, b = backend.open(alpha), backend.open(beta)
    for name in ("v", "w"):
        a.create_view(alpha, view(name))
        b.create_view(beta, view(name))
    for s, proj in ((a, alpha), (b, beta)):
        s.write(proj, "v", rows_batch([b"k", b"j"], [1, 1], [0, 0], [proj.encode(), b"j"]))
        s.write(proj, "w", rows_batch([b"k"], [1], [0], [b"w"]))
    assert backend.owned(alpha) and backend.owned(beta)
    foreign = _make_foreign_objects(backend, alpha)

    a.teardown(alpha)
    assert backend.owned(alpha) == set()
    assert _foreign_objects_left(backend, alpha) == foreign
    assert b.read(beta, [("v", [b"k", b"j"]), ("w", [b"k"])]) == [[beta.encode(), b"j"], [b"w"]]
    a.teardown(alpha)  # idempotent
    a.create_view(alpha, view("v"))
    assert a.read(alpha, [("v", [b"k"])]) == [[None]]


def test_projects_whose_names_prefix_each_other(backend: Backend) -> None:
    short = backend.project
    long_ = backend.add_project(short + "_x")  # "<short>_x" starts with "<short>"
    a, ab = backend.open(short), backend.open(long_)
    for s, proj in ((a, short), (ab, long_)):
        s.create_view(proj, view("v"))
        s.write(proj, "v", rows_batch([b"k"], [1], [0], [proj.encode()]))
    ab.drop_view(long_, "v")
    assert a.read(short, [("v", [b"k"])]) == [[short.encode()]]
    ab.create_view(long_, view("v"))
    ab.write(long_, "v", rows_batch([b"k"], [1], [0], [long_.encode()]))
    a.teardown(short)
    assert ab.read(long_, [("v", [b"k"])]) == [[long_.encode()]]


def _make_foreign_objects(backend: Backend, project: str) -> set[str]:
    """Objects banquet did not make, with names close to the project's: left alone."""
    if backend.kind == "sqlite":
        sqlite_query(backend.tmp_path / "online.db", f'CREATE TABLE "{project}__mine" (x)')
    elif backend.is_redis:
        client = backend.redis_client()
        for key in (project, f"{project}_mine", f"x{project}:k"):
            client.set(key.encode(), b"not banquet's", ex=600)
            backend.extra_redis_keys.append(key.encode())  # deleted after the test
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(backend.pg_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE TABLE {} (x int)").format(
                    sql.Identifier(backend.schema, f"{project}_mine")
                )
            )
    return _foreign_objects_left(backend, project)


def sqlite_query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Through banquet's own SQLite: Python's ``sqlite3`` would break the store's locks."""
    from banquet import _core

    probe = _core.SqliteStore(str(db))
    try:
        return probe.query(sql)  # type: ignore[no-any-return]
    finally:
        probe.close()


def _foreign_objects_left(backend: Backend, project: str) -> set[str]:
    if backend.kind == "sqlite":
        names = {
            r[0]
            for r in sqlite_query(backend.tmp_path / "online.db", "SELECT name FROM sqlite_master")
        }
        return {n for n in names if n == f"{project}__mine"}
    if backend.is_redis:
        client = backend.redis_client()
        names = {project, f"{project}_mine", f"x{project}:k"}
        return {n for n in names if client.exists(n.encode())}
    return {n for n in backend.pg_tables() if n == f"{project}_mine"}
