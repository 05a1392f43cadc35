"""The Postgres store's own behaviour: table names, layout, a failed write writes nothing,
an unknown database is a StoreError."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from store_support import pg_store, view

from banquet.errors import StoreError, StoreUnavailable
from banquet.online.base import rows_batch
from banquet.online.postgres import VIEWS_TABLE, table_name

if TYPE_CHECKING:
    from conftest import Backend


# --- Postgres: layout, configuration, and the server going away ---------------------------------------


def test_postgres_table_names() -> None:
    assert table_name("p", "v") == "p:v"
    long_view = "v" * 70
    a, b = table_name("proj", long_view), table_name("proj", long_view + "x")
    assert len(a.encode()) == len(b.encode()) == 63
    assert a != b and a.startswith("proj:vvv")
    assert table_name("proj", long_view) == a  # deterministic


@pytest.mark.postgres
def test_postgres_layout(postgres_backend: Backend) -> None:
    import psycopg

    p, schema = postgres_backend.project, postgres_backend.schema
    s = postgres_backend.open()
    long_view = "a_rather_long_feature_view_name_" + "x" * 40
    for name in ("v", long_view):
        s.create_view(p, view(name))
        s.write(p, name, rows_batch([b"k"], [7], [3], [b"blob"]))
    assert postgres_backend.pg_tables() == {VIEWS_TABLE, f"{p}:v", table_name(p, long_view)}
    with psycopg.connect(postgres_backend.pg_dsn, autocommit=True) as conn:
        cols = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, f"{p}:v"],
        ).fetchall()
        pk = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
            [f'"{schema}"."{p}:v"'],
        ).fetchall()
        row = conn.execute(
            f'SELECT entity_key, event_ts, created_ts, value FROM "{schema}"."{p}:v"'
        ).fetchone()
        owned = conn.execute(
            f'SELECT project, view, table_name FROM "{schema}".{VIEWS_TABLE} ORDER BY view'
        ).fetchall()
    assert cols == [
        ("entity_key", "bytea", "NO"),
        ("event_ts", "bigint", "NO"),
        ("created_ts", "bigint", "NO"),
        ("value", "bytea", "NO"),
    ]
    assert pk == [("entity_key",)]
    assert row == (b"k", 7, 3, b"blob")
    assert owned == [(p, long_view, table_name(p, long_view)), (p, "v", f"{p}:v")]
    assert s.read(p, [(long_view, [b"k"]), ("v", [b"k"])]) == [[b"blob"], [b"blob"]]


@pytest.mark.postgres
def test_postgres_failed_write_writes_nothing(postgres_backend: Backend) -> None:
    p = postgres_backend.project
    s = postgres_backend.open()
    s.create_view(p, view("v"))
    s.write(p, "v", rows_batch([b"a"], [1], [0], [b"old"]))
    for n in (3, 3000):  # the array path and the COPY path
        keys = [b"a"] + [b"k%d" % i for i in range(n - 1)]
        blobs: list[Any] = [b"new"] * n
        blobs[n // 2] = None  # violates NOT NULL in the middle of the batch
        with pytest.raises(StoreError):
            s.write(p, "v", rows_batch(keys, [2] * n, [0] * n, blobs))
        assert s.read(p, [("v", keys[:3])]) == [[b"old", None, None]]
    s.write(p, "v", rows_batch([b"a"], [3], [0], [b"newer"]))  # the pool's connection is still good
    assert s.read(p, [("v", [b"a"])]) == [[b"newer"]]


@pytest.mark.postgres
def test_postgres_unknown_database_is_a_store_error(
    pg_dsn: str, tmp_path: Path, postgres_settings: Callable[[str], dict[str, Any]]
) -> None:
    settings = postgres_settings(pg_dsn)
    settings["database"] = "no_such_database_" + os.urandom(4).hex()
    s = pg_store(tmp_path, **settings)
    with pytest.raises(StoreError, match="no_such_database") as info:
        s.read("gone", [("v", [b"k"])])
    assert not isinstance(info.value, StoreUnavailable)  # a setting to fix, not an outage
    s.close()
