"""The local test servers (scripts/services.sh) are not open ones, and the script leaves the
machine as it found it: passwords on every login, no superuser for the tests, state outside
$HOME, no permission change outside its own folder."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from banquet import RepoConfig
from banquet.config import PostgresOnlineConfig, RedisOnlineConfig
from banquet.errors import StoreError, StoreUnavailable
from banquet.online import open_online_store

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "services.sh"
WRONG = "Wr0ngPassw0rdXy"


def no_retry() -> object:
    """redis-py retries a refused login with backoff (~4.5 s): not what is tested here."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def env(name: str) -> str:
    value = os.environ.get(name, "")
    assert value, f"{name} is not set: source scripts/services.env (make services)"
    return value


@pytest.mark.postgres
def test_postgres_refuses_a_wrong_password(pg_dsn: str, tmp_path: Path) -> None:
    import psycopg

    # libpq directly: refused (before, `trust` let any password in)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_dsn.replace(env("BANQUET_PG_PASSWORD"), WRONG), connect_timeout=5)
    # through the store: a typed error naming the problem, not the password
    cfg = PostgresOnlineConfig(
        host=env("BANQUET_PG_HOST"),
        port=int(env("BANQUET_PG_PORT")),
        database=env("BANQUET_PG_DB"),
        user=env("BANQUET_PG_USER"),
        password=WRONG,
    )
    store = open_online_store(RepoConfig(project="p", online_store=cfg, repo_path=tmp_path))
    with pytest.raises(StoreError, match="password authentication failed") as info:
        store.read("p", [("v", [b"k"])])
    store.close()
    assert WRONG not in str(info.value) and WRONG not in repr(info.value)


@pytest.mark.postgres
def test_postgres_refuses_no_password_and_the_superuser(pg_dsn: str) -> None:
    import psycopg

    host, port = env("BANQUET_PG_HOST"), env("BANQUET_PG_PORT")
    for user, password in ((env("BANQUET_PG_USER"), ""), ("postgres", ""), ("postgres", WRONG)):
        with pytest.raises(psycopg.OperationalError, match="password|authentication"):
            psycopg.connect(
                host=host, port=port, user=user, password=password, dbname="postgres",
                connect_timeout=5,
            )  # fmt: skip


@pytest.mark.postgres
def test_the_test_role_is_no_superuser(pg_dsn: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
            "(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())"
            " FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row is not None
        superuser, createrole, createdb, replication, bypassrls, owner = row
        assert not superuser and not createrole and not replication and not bypassrls
        assert createdb and owner == env("BANQUET_PG_USER")
        # what a superuser could do, it cannot: read the server's files, see the password hashes
        for sql in ("SELECT pg_read_file('postgresql.conf')", "SELECT * FROM pg_authid"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
            conn.rollback()
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)


@pytest.mark.redis
def test_redis_refuses_a_client_without_the_password(tmp_path: Path) -> None:
    import redis

    host, port = env("BANQUET_REDIS_HOST"), int(env("BANQUET_REDIS_PORT"))
    client = redis.Redis(host=host, port=port, socket_timeout=5, retry=no_retry())
    with pytest.raises(redis.AuthenticationError):
        client.ping()
    client.close()
    for shape in (f"{host}:{port}", f"{host}:{port},password={WRONG}", f"redis://{host}:{port}/0"):
        cfg = RedisOnlineConfig(connection_string=shape)
        store = open_online_store(RepoConfig(project="p", online_store=cfg, repo_path=tmp_path))
        with pytest.raises(StoreError) as info:
            store.read("p", [("v", [b"k"])])
        store.close()
        assert WRONG not in str(info.value)
    # and with it, it answers (both connection string shapes)
    password = env("BANQUET_REDIS_PASSWORD")
    for shape in (f"{host}:{port},password={password}", f"redis://:{password}@{host}:{port}/0"):
        cfg = RedisOnlineConfig(connection_string=shape)
        store = open_online_store(RepoConfig(project="p", online_store=cfg, repo_path=tmp_path))
        assert store.read("p", [("v", [b"k"])]) == [[None]]
        store.close()


@pytest.mark.redis
def test_redis_cluster_nodes_refuse_a_client_without_the_password(tmp_path: Path) -> None:
    import redis

    nodes = env("BANQUET_REDIS_CLUSTER_NODES")
    for node in nodes.split(","):
        host, _, port = node.rpartition(":")
        client = redis.Redis(host=host, port=int(port), socket_timeout=5, retry=no_retry())
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        client.close()
    cfg = RedisOnlineConfig(connection_string=nodes, redis_type="redis_cluster")
    store = open_online_store(RepoConfig(project="p", online_store=cfg, repo_path=tmp_path))
    with pytest.raises(StoreError, match="(?i)auth") as info:
        store.read("p", [("v", [b"k"])])
    assert not isinstance(info.value, StoreUnavailable), "refused, not down: no retry helps"
    # with the password, in either shape (a URL names one node; the others are discovered)
    password = env("BANQUET_REDIS_PASSWORD")
    for shape in (f"{nodes},password={password}", f"redis://:{password}@{nodes.split(',')[0]}"):
        cfg = RedisOnlineConfig(connection_string=shape, redis_type="redis_cluster")
        store = open_online_store(RepoConfig(project="p", online_store=cfg, repo_path=tmp_path))
        assert store.read("p", [("v", [b"k"]), ("v", [b"j"])]) == [[None], [None]]
        store.close()
    store.close()


def test_state_lives_outside_home_and_is_private() -> None:
    services = Path(env("BANQUET_SERVICES_DIR"))
    home = Path.home().resolve()
    assert home not in services.resolve().parents, services
    info = services.stat()
    assert info.st_uid == os.geteuid()
    assert stat.S_IMODE(info.st_mode) & 0o077 in (0, 0o011)  # others may search (root), no more
    credentials = services / "credentials"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    for conf in [*services.glob("redis/*.conf"), *services.glob("redis-cluster/redis-*.conf")]:
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600, conf  # they hold requirepass
    # the password is in no server's command line
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            for name in ("BANQUET_PG_PASSWORD", "BANQUET_REDIS_PASSWORD"):
                assert env(name) not in cmd, f"pid {pid} has the password on its command line"


@pytest.mark.skipif(os.geteuid() != 0, reason="the old layout changed permissions only as root")
def test_the_old_layout_is_removed_and_its_home_permission_taken_back(tmp_path: Path) -> None:
    """An old ~/.cache/banquet/services (made as root, with o+x granted on $HOME so that the
    postgres user could reach it) is stopped, deleted and the o+x taken back; a folder that
    others may read (r-x) was opened on purpose and is left alone."""
    home = tmp_path / "home"
    legacy = home / ".cache" / "banquet" / "services"
    (legacy / "pg" / "data").mkdir(parents=True)
    (legacy / "redis").mkdir()
    (legacy / "redis" / "redis-1.pid").write_text("1\n")  # pid 1: not ours, never signalled
    shutil.chown(legacy / "pg", "postgres")
    home.chmod(0o701)  # the old script's footprint
    (home / ".cache").chmod(0o755)
    (home / "keep").mkdir()
    run_env = {
        **os.environ,
        "HOME": str(home),
        "BANQUET_SERVICES_DIR": str(tmp_path / "state"),
        # ports where none of our servers listen: stop finds no pid file anyway
    }
    proc = subprocess.run(
        [str(SCRIPT), "stop"], env=run_env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert not legacy.exists()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / ".cache").stat().st_mode) == 0o755
    assert "taking back the search permission (o+x)" in proc.stderr
    # the real servers still run
    status = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout
