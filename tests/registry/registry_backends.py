"""Helpers shared by the registry tests and their worker processes (``conftest`` holds the
fixtures): which registries exist and how to open one from ``(kind, location)``."""

from __future__ import annotations

import pytest

from banquet.registry.base import Registry

KINDS = [
    pytest.param("file", id="file"),
    pytest.param("sql", id="sql", marks=pytest.mark.postgres),
]

Location = tuple[str, str]


def open_location(location: Location) -> Registry:
    """A registry for ``(kind, location)``; also used in worker processes."""
    kind, where = location
    if kind == "sql":
        from banquet.registry.sql import SqlRegistry

        return SqlRegistry(where)
    from banquet.registry.file import FileRegistry

    return FileRegistry(where)


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
