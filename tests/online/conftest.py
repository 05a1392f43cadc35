"""One fixture, ``backend``, for every online store: sqlite, redis, redis_cluster, postgres.

Each test gets its own place: a fresh SQLite file, unique project names (the Redis key prefix)
and, on Postgres, a schema of its own. Everything a test made is removed afterwards. The
Redis, Redis Cluster and Postgres cases carry the ``redis`` / ``postgres`` markers and need
the servers from ``make services`` (the cluster: ``BANQUET_REDIS_CLUSTER_NODES``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
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
from relay import TcpProxy

KINDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("redis_cluster", id="redis_cluster", marks=pytest.mark.redis),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def sqlite_query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on a SQLite online store file, through banquet's own SQLite (Python's
    ``sqlite3`` in the same process would break the store's locks)."""
    from banquet import _core

    probe = _core.SqliteStore(str(db))
    try:
        return probe.query(sql)  # type: ignore[no-any-return]
    finally:
        probe.close()


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


DEFAULT_CLUSTER_NODES = "127.0.0.1:17001,127.0.0.1:17002,127.0.0.1:17003"


@pytest.fixture(scope="session")
def redis_cluster_nodes(redis_password: str) -> str:
    """``host:port,...`` of the local Redis Cluster (BANQUET_REDIS_CLUSTER_NODES), checked to
    report ``cluster_state:ok`` on every node (logged in with BANQUET_REDIS_PASSWORD)."""
    import redis

    nodes = os.environ.get("BANQUET_REDIS_CLUSTER_NODES", DEFAULT_CLUSTER_NODES)
    for node in nodes.split(","):
        host, _, port = node.rpartition(":")
        client = redis.Redis(
            host=host,
            port=int(port),
            password=redis_password or None,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        try:
            state = client.cluster("INFO").get("cluster_state")
        except redis.RedisError as e:
            state = str(e)
        finally:
            client.close()
        if state != "ok":
            pytest.fail(
                f"Redis Cluster node {node} is not ready ({state}): run `make services` "
                "(scripts/services.sh start) to start the local cluster",
                pytrace=False,
            )
    return nodes


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
        self.redis_url = self.pg_dsn = self.cluster_nodes = ""
        self.redis_password = os.environ.get("BANQUET_REDIS_PASSWORD", "")
        if kind == "redis":
            self.redis_url = request.getfixturevalue("redis_url")
        elif kind == "redis_cluster":
            self.cluster_nodes = request.getfixturevalue("redis_cluster_nodes")
        elif kind == "postgres":
            self.pg_dsn = request.getfixturevalue("pg_dsn")
            self.schema = f"banquet_test_{self.token}"

    @property
    def is_redis(self) -> bool:
        return self.kind in ("redis", "redis_cluster")

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
        if self.kind == "redis_cluster":
            auth = f",password={self.redis_password}" if self.redis_password else ""
            return RedisOnlineConfig(
                connection_string=self.cluster_nodes + auth,
                redis_type="redis_cluster",
                **overrides,
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
            db = self.tmp_path / "online.db"
            if not db.exists():
                return set()
            names = [r[0] for r in sqlite_query(db, "SELECT name FROM sqlite_master")]
            return {n for n in names if n.startswith(f"{project}:")}
        if self.is_redis:
            return {k.decode("latin-1") for k in self.redis_keys(f"{project}:*".encode())}
        return {n for n in self.pg_tables() if n.startswith(f"{project}:")}

    def pg_tables(self) -> set[str]:
        import psycopg

        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", [self.schema]
            ).fetchall()
        return {r[0] for r in rows}

    def redis_client(self) -> Any:
        """A redis-py client on the test server or cluster (for looking at what the store
        wrote); on the cluster, redis-py's own RedisCluster routes each command."""
        import redis
        from redis.cluster import ClusterNode, RedisCluster

        client = self.__dict__.get("_client")
        if client is None:
            if self.kind == "redis_cluster":
                nodes = [n.rpartition(":") for n in self.cluster_nodes.split(",")]
                client = RedisCluster(
                    startup_nodes=[ClusterNode(h, int(p)) for h, _, p in nodes],
                    password=self.redis_password or None,
                    socket_timeout=5,
                    socket_connect_timeout=5,
                )
            else:
                client = redis.Redis.from_url(
                    self.redis_url, socket_timeout=5, socket_connect_timeout=5
                )
            self.__dict__["_client"] = client
        return client

    def redis_keys(self, pattern: bytes) -> list[bytes]:
        """Every key matching ``pattern`` (on every cluster primary)."""
        client = self.redis_client()
        if self.kind == "redis_cluster":
            return list(client.scan_iter(match=pattern, count=1000, target_nodes=client.PRIMARIES))
        return list(client.scan_iter(match=pattern, count=1000))

    def redis_unlink(self, keys: list[bytes]) -> None:
        pipe = self.redis_client().pipeline(transaction=False)
        for k in keys:  # one key a command: a cluster refuses keys of several slots
            pipe.unlink(k)
        pipe.execute()

    # --- cleanup ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        for store in self._stores:
            store.close()
        if self.is_redis:
            for project in self._projects:
                self.redis_unlink(self.redis_keys(f"{project}:*".encode()))
            self.redis_unlink(self.extra_redis_keys)
            self.redis_client().close()
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
    """Each online store in turn (sqlite, redis, redis_cluster, postgres)."""
    return make_backend(request.param)


@pytest.fixture
def store(backend: Backend) -> OnlineStore:
    """The ``backend``'s store for its project, with a view ``v`` created."""
    from store_support import view

    s = backend.open()
    s.create_view(backend.project, view("v"))
    return s


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


# --- servers that tests start, break and stop themselves (never the shared ones) ---------------


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[str, int], TcpProxy]]:
    """``tcp_proxy(host, port)``: a breakable relay to a server; closed after the test."""
    made: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        made.append(TcpProxy(host, port))
        return made[-1]

    yield make
    for proxy in made:
        proxy.kill()


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all bound at once, then released)."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in range(n)]
    try:
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class ThrowawayCluster:
    """A private 3-node Redis Cluster (no replicas) on free loopback ports."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            pytest.fail("no redis-server / redis-cli: run `make services` (it installs them)")
        ports = free_ports(6)
        self.ports, bus = ports[:3], ports[3:]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        for port, bus_port in zip(self.ports, bus):
            self.procs[port] = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
                + ["--cluster-enabled", "yes", "--cluster-port", str(bus_port)]
                + ["--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "5000"]
                + ["--save", "", "--appendonly", "no", "--dir", str(folder)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.nodes = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        for port in self.ports:
            self._wait(port, lambda c: c.ping())
        subprocess.run(
            ["redis-cli", "--cluster", "create", *self.nodes.split(","), "--cluster-replicas", "0"]
            + ["--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in self.ports:
            self._wait(port, lambda c: c.cluster("INFO").get("cluster_state") == "ok")

    @staticmethod
    def _wait(port: int, ready: Callable[[Any], Any]) -> None:
        import redis

        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    if ready(client):
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"throwaway cluster node {port} is not ready")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        from store_support import stop_server

        for proc in self.procs.values():
            stop_server(proc)


@pytest.fixture
def throwaway_cluster(tmp_path: Path) -> Iterator[ThrowawayCluster]:
    cluster = ThrowawayCluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()
