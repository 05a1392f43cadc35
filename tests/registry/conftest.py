"""One fixture, ``registry``, for every registry: the JSON file and the SQL (Postgres) one.

``registry_location`` is ``(kind, location)``: a fresh file path, or the local Postgres DSN
with ``?schema=<unique>`` so that tests (and other people's tests on the same server) never
share tables. The schema is dropped afterwards. The sql case carries the ``postgres`` marker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_backends import KINDS, Location, drop_schema, open_location

from banquet.registry.base import Registry


@pytest.fixture
def pg_schema_dsn(pg_dsn: str) -> Iterator[str]:
    """The local Postgres DSN with a fresh ``?schema=``, dropped after the test."""
    schema = f"test_reg_{uuid.uuid4().hex[:12]}"
    yield f"{pg_dsn}{'&' if '?' in pg_dsn else '?'}schema={schema}"
    drop_schema(pg_dsn, schema)


@pytest.fixture(params=KINDS)
def registry_location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    if request.param == "sql":
        return ("sql", request.getfixturevalue("pg_schema_dsn"))
    return ("file", str(tmp_path / "data" / "registry.db"))


@pytest.fixture
def registry(registry_location: Location) -> Iterator[Registry]:
    reg = open_location(registry_location)
    yield reg
    close = getattr(reg, "close", None)
    if close is not None:
        close()
