"""One fixture, ``backend``, for every online store: sqlite, redis and postgres.

Each test gets its own place: a fresh SQLite file, unique project names (the Redis key prefix)
and, on Postgres, a schema of its own. Everything a test made is removed afterwards. The
Redis and Postgres cases carry the ``redis`` / ``postgres`` markers and need the servers from
``make services``.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from banquet import RepoConfig
from banquet.config import (
    OnlineConfig,
    PostgresOnlineConfig,
    RedisOnlineConfig,
    SqliteOnlineConfig,
)
from banquet.online import open_online_store
from banquet.online.base import OnlineStore

KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def redis_connection_string(url: str, **options: Any) -> str:
    """``redis://[:password@]host:port/db`` -> ``host:port,db=N[,password=..]``."""
    u = urlsplit(url)
    parts = [f"{u.hostname}:{u.port or 6379}", f"db={(u.path or '/0').lstrip('/') or 0}"]
    if u.username:
        parts.append(f"username={unquote(u.username)}")
    if u.password:
        parts.append(f"password={unquote(u.password)}")
    parts += [f"{k}={v}" for k, v in options.items()]
    return ",".join(parts)


def postgres_settings(dsn: str) -> dict[str, Any]:
    """The ``online_store`` keys (host, port, ...) of a libpq DSN."""
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(dsn)
    out: dict[str, Any] = {
        "host": d.get("host", "localhost"),
        "port": int(d.get("port", 5432)),
        "database": d.get("dbname", "postgres"),
        "user": d.get("user", "postgres"),
        "password": d.get("password", ""),
    }
    if d.get("sslmode"):
        out["sslmode"] = d["sslmode"]
    return out


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Backend:
    """Where one test's online data lives, and how to open stores on it."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.token = uuid.uuid4().hex[:10]
        self._projects: list[str] = []
        self.project = self.new_project()
        self._stores: list[OnlineStore] = []
        self.extra_redis_keys: list[bytes] = []
        self.redis_url = self.pg_dsn = ""
        if kind == "redis":
            self.redis_url = request.getfixturevalue("redis_url")
        elif kind == "postgres":
            self.pg_dsn = request.getfixturevalue("pg_dsn")
            self.schema = f"banquet_test_{self.token}"

    def new_project(self) -> str:
        """A project name no other test (or other engineer's run) uses."""
        return self.add_project(f"t{uuid.uuid4().hex[:12]}")

    def add_project(self, name: str) -> str:
        """Clean up ``name``'s data after the test too."""
        self.__dict__.setdefault("_projects", []).append(name)
        return name

    # --- configs ---------------------------------------------------------------------------

    def online_config(self, **overrides: Any) -> OnlineConfig:
        if self.kind == "sqlite":
            return SqliteOnlineConfig(path=str(self.tmp_path / "online.db"), **overrides)
        if self.kind == "redis":
            return RedisOnlineConfig(
                connection_string=redis_connection_string(self.redis_url), **overrides
            )
        settings = {**postgres_settings(self.pg_dsn), "db_schema": self.schema, **overrides}
        return PostgresOnlineConfig(**settings)

    def config(self, project: str | None = None, **overrides: Any) -> RepoConfig:
        return RepoConfig(
            project=project or self.project,
            online_store=self.online_config(**overrides),
            repo_path=self.tmp_path,
        )

    def yaml(self) -> str:
        """The ``online_store:`` section of a feature_store.yaml for this backend."""
        cfg = self.online_config()
        lines = ["online_store:"]
        for name, value in vars(cfg).items():
            if value is not None:
                lines.append(
                    f"  {name}: {value!r}" if isinstance(value, str) else f"  {name}: {value}"
                )
        return "\n".join(lines) + "\n"

    def open(self, project: str | None = None, **overrides: Any) -> OnlineStore:
        """An online store for ``project`` (default: this test's), closed after the test."""
        store = open_online_store(self.config(project, **overrides))
        self._stores.append(store)
        return store

    # --- inspection ------------------------------------------------------------------------

    def owned(self, project: str) -> set[str]:
        """The raw things in the backend that belong to ``project``: SQLite/Postgres tables
        named ``<project>:...``, Redis keys starting ``<project>:``."""
        if self.kind == "sqlite":
            import sqlite3

            db = self.tmp_path / "online.db"
            if not db.exists():
                return set()
            conn = sqlite3.connect(db)
            try:
                names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
            finally:
                conn.close()
            return {n for n in names if n.startswith(f"{project}:")}
        if self.kind == "redis":
            return {
                k.decode("latin-1")
                for k in self.redis_client().scan_iter(match=f"{project}:*".encode())
            }
        return {n for n in self.pg_tables() if n.startswith(f"{project}:")}

    def pg_tables(self) -> set[str]:
        import psycopg

        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", [self.schema]
            ).fetchall()
        return {r[0] for r in rows}

    def redis_client(self) -> Any:
        """A redis-py client on the test server (for looking at what the store wrote)."""
        import redis

        client = self.__dict__.get("_client")
        if client is None:
            client = self.__dict__["_client"] = redis.Redis.from_url(
                self.redis_url, socket_timeout=5, socket_connect_timeout=5
            )
        return client

    # --- cleanup ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        for store in self._stores:
            store.close()
        if self.kind == "redis":
            client = self.redis_client()
            for project in self._projects:
                keys = list(client.scan_iter(match=f"{project}:*".encode(), count=1000))
                if keys:
                    client.unlink(*keys)
            if self.extra_redis_keys:
                client.unlink(*self.extra_redis_keys)
            client.close()
        elif self.kind == "postgres":
            import psycopg
            from psycopg import sql

            with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
                )


@pytest.fixture
def make_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], Backend]]:
    """``make_backend("redis")``: a Backend of one kind, cleaned up after the test."""
    made: list[Backend] = []

    def make(kind: str) -> Backend:
        folder = tmp_path / f"{kind}{len(made)}"
        folder.mkdir()
        made.append(Backend(kind, folder, request))
        return made[-1]

    try:
        yield make
    finally:
        for b in made:
            b.cleanup()


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, make_backend: Callable[[str], Backend]) -> Backend:
    """Each online store in turn (sqlite, redis, postgres)."""
    return make_backend(request.param)


@pytest.fixture
def redis_backend(make_backend: Callable[[str], Backend]) -> Backend:
    return make_backend("redis")


@pytest.fixture
def postgres_backend(make_backend: Callable[[str], Backend]) -> Backend:
    return make_backend("postgres")


# Test modules cannot import this file (tests/ is not a package): the helpers as fixtures.


@pytest.fixture(name="free_port")
def free_port_fixture() -> Callable[[], int]:
    return free_port


@pytest.fixture(name="redis_connection_string")
def redis_connection_string_fixture() -> Callable[..., str]:
    return redis_connection_string


@pytest.fixture(name="postgres_settings")
def postgres_settings_fixture() -> Callable[[str], dict[str, Any]]:
    return postgres_settings
