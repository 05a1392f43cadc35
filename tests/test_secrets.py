"""No password in any message: a matrix of malformed configurations of every store and registry.

Each case builds a configuration holding a known password (always wrong for the local servers,
so every attempt to use it fails), uses it, and requires a typed ``BanquetError`` whose text
-- str and repr, the whole chain of causes and contexts, the formatted traceback -- and every
log record emitted meanwhile hold the password in no spelling (plain, URL-quoted, repr).
The server part does the same for the HTTP bodies and the log of ``banquet serve``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from banquet import FeatureStore, RepoConfig
from banquet.errors import BanquetError
from banquet.redact import redact_text

sys.path.insert(0, str(Path(__file__).parent / "server"))
from server_support import make_repo  # noqa: E402

PW = "Pw7sEcReT9xq"  # the known password: in no message, anywhere
PW_ODD = "p@ss:w/rd#Pw7sEcReT9xq"  # one a URL must escape (and often is not)
SPELLINGS = {PW, quote(PW_ODD, safe=""), "p@ss:w/rd", PW_ODD}

PG_HOST = os.environ.get("BANQUET_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BANQUET_PG_PORT", "55432"))
PG_DB = os.environ.get("BANQUET_PG_DB", "banquet")
PG_USER = os.environ.get("BANQUET_PG_USER", "banquet")
R_HOST = os.environ.get("BANQUET_REDIS_HOST", "127.0.0.1")
R_PORT = int(os.environ.get("BANQUET_REDIS_PORT", "56379"))
CLUSTER = os.environ.get("BANQUET_REDIS_CLUSTER_NODES", "127.0.0.1:17001,127.0.0.1:17002")
DEAD = "127.0.0.1:1"  # nothing listens on port 1


def texts_of(exc: BaseException) -> Iterable[str]:
    """Every text an exception shows: str/repr/args down the cause and context chain, and
    the formatted traceback."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield str(e)
        yield repr(e)
        yield from (repr(a) for a in e.args)
        stack += [e.__cause__, e.__context__]
    yield "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def assert_no_secret(texts: Iterable[str], where: str) -> None:
    for text in texts:
        for secret in SPELLINGS:
            assert secret not in text, f"{where} shows the password: {text[:600]}"


def log_texts(records: list[logging.LogRecord]) -> Iterable[str]:
    for r in records:
        yield r.getMessage()
        if r.exc_info and r.exc_info[1] is not None:
            yield from texts_of(r.exc_info[1])


def run_case(
    caplog: pytest.LogCaptureFixture, action: Callable[[], Any], want: type[BaseException]
) -> BaseException:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BaseException) as info:
        action()
    exc = info.value
    assert_no_secret(texts_of(exc), "the exception")
    assert_no_secret(log_texts(caplog.records), "a log record")
    assert isinstance(exc, want), f"not a {want.__name__}: {type(exc).__name__}: {exc}"
    return exc


# --- the configurations --------------------------------------------------------------------


def pg_url(password: str = PW, host: str = f"{PG_HOST}:{PG_PORT}", db: str = PG_DB) -> str:
    return f"postgresql://{PG_USER}:{password}@{host}/{db}"


REDIS_SHAPES = {
    # URL forms
    "url": f"redis://:{PW}@{R_HOST}:{R_PORT}/0",
    "url-user": f"redis://default:{PW}@{R_HOST}:{R_PORT}",
    "url-odd-password": f"redis://:{PW_ODD}@{R_HOST}:{R_PORT}/0",
    "url-quoted-password": f"redis://:{quote(PW_ODD, safe='')}@{R_HOST}:{R_PORT}/0",
    "url-tls": f"rediss://:{PW}@{R_HOST}:{R_PORT}/0?socket_timeout=0.5&socket_connect_timeout=0.5",
    "url-no-port": f"redis://:{PW}@{R_HOST}/0",
    "url-bad-port": f"redis://:{PW}@{R_HOST}:99999/0",
    "url-bad-db": f"redis://:{PW}@{R_HOST}:{R_PORT}/x",
    "url-unknown-scheme": f"http://:{PW}@{R_HOST}:{R_PORT}",
    "url-dead": f"redis://:{PW}@{DEAD}/0",
    # Feast's host:port,option=value
    "option": f"{R_HOST}:{R_PORT},password={PW}",
    "option-user": f"{R_HOST}:{R_PORT},username=default,password={PW}",
    "option-odd": f"{R_HOST}:{R_PORT},password={PW_ODD}",
    "option-spaces": f"{R_HOST}:{R_PORT}, password = {PW} ",
    "missing-port": f"{R_HOST},password={PW}",
    "bad-port": f"{R_HOST}:port,password={PW}",
    "port-out-of-range": f"{R_HOST}:70000,password={PW}",
    "unknown-option": f"{R_HOST}:{R_PORT},password={PW},bogus=1",
    "bad-db": f"{R_HOST}:{R_PORT},db=x,password={PW}",
    "bad-ssl": f"{R_HOST}:{R_PORT},password={PW},ssl=maybe",
    "bad-timeout": f"{R_HOST}:{R_PORT},password={PW},socket_timeout=-1",
    "dead": f"{DEAD},password={PW}",
    "unknown-host": f"no-such-host.invalid:6379,password={PW}",
    # malformed shapes that hold the password in other places
    "bare-password": f"{R_HOST}:{R_PORT},{PW}",
    "semicolons": f"{R_HOST}:{R_PORT};password={PW}",
    "password-first": f"password={PW},{R_HOST}:{R_PORT}",
    "userinfo-no-scheme": f":{PW}@{R_HOST}:{R_PORT}",
    "colon-password": f"{R_HOST}:{R_PORT}:{PW}",
    "empty-host": f":{R_PORT},password={PW}",
}

CLUSTER_SHAPES = {
    "nodes-option": f"{CLUSTER},password={PW}",
    "url": f"redis://:{PW}@{CLUSTER.split(',')[0]}",
    "dead-nodes": f"{DEAD},127.0.0.1:2,password={PW}",
    "bad-node": f"{CLUSTER.split(',')[0]},127.0.0.1:x,password={PW}",
    "db-on-cluster": f"{CLUSTER},db=1,password={PW}",
    "bare-password": f"{CLUSTER},{PW}",
}

PG_SHAPES: dict[str, dict[str, Any]] = {
    "wrong-password": {},
    "odd-password": {"password": PW_ODD},
    "unknown-database": {"database": "no_such_db_x"},
    "unknown-user": {"user": "no_such_user_x"},
    "dead-port": {"port": 1},
    "port-out-of-range": {"port": 99999},
    "unknown-host": {"host": "no-such-host.invalid"},
    "ssl-required": {"sslmode": "require"},
    "bad-sslmode": {"sslmode": "bogus"},
    "bad-schema-name": {"db_schema": 'a"; drop'},
    "password-as-host": {"host": f"{PG_HOST} password={PW}"},
}

REGISTRY_SHAPES = {
    "wrong-password": pg_url(),
    "odd-password-unescaped": pg_url(PW_ODD),
    "odd-password-quoted": pg_url(quote(PW_ODD, safe="")),
    "postgres-scheme": pg_url().replace("postgresql://", "postgres://"),
    "driver-scheme": pg_url().replace("postgresql://", "postgresql+psycopg://"),
    "unknown-database": pg_url(db="no_such_db_x"),
    "dead-port": pg_url(host=DEAD),
    "bad-port": pg_url(host=f"{PG_HOST}:port"),
    "port-out-of-range": pg_url(host=f"{PG_HOST}:99999"),
    "unknown-host": pg_url(host="no-such-host.invalid:5432"),
    "bad-ipv6": pg_url(host="[::1"),
    "schema-option": pg_url() + "?schema=s1",
    "bad-option": pg_url() + "?bogus_option=1",
    "bad-sslmode": pg_url() + "?sslmode=bogus",
    "password-option": f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}?password={PW}",
    "no-scheme": f"{PG_USER}:{PW}@{PG_HOST}:{PG_PORT}/{PG_DB}",
    "wrong-scheme": f"mysql://{PG_USER}:{PW}@{PG_HOST}/{PG_DB}",
    "conninfo": f"host={PG_HOST} port={PG_PORT} dbname={PG_DB} user={PG_USER} password={PW}",
}


def config(tmp_path: Path, **sections: Any) -> RepoConfig:
    return RepoConfig.from_dict(
        {"project": "secrets", "registry": str(tmp_path / "registry.db"), **sections},
        repo_path=tmp_path,
    )


def pg_settings(**overrides: Any) -> dict[str, Any]:
    return {
        "host": PG_HOST,
        "port": PG_PORT,
        "database": PG_DB,
        "user": PG_USER,
        "password": PW,
        **overrides,
    }


def use_online(cfg: RepoConfig) -> None:
    from banquet.online import open_online_store

    store = open_online_store(cfg)
    try:
        store.read("secrets", [("v", [b"k"])])
    finally:
        store.close()


# --- the matrix ----------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.parametrize("shape", sorted(REDIS_SHAPES))
def test_redis(shape: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    section = {"type": "redis", "connection_string": REDIS_SHAPES[shape]}
    run_case(caplog, lambda: use_online(config(tmp_path, online_store=section)), BanquetError)


@pytest.mark.redis
@pytest.mark.parametrize("shape", sorted(CLUSTER_SHAPES))
def test_redis_cluster(shape: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    section = {
        "type": "redis",
        "redis_type": "redis_cluster",
        "connection_string": CLUSTER_SHAPES[shape],
    }
    run_case(caplog, lambda: use_online(config(tmp_path, online_store=section)), BanquetError)


@pytest.mark.postgres
@pytest.mark.parametrize("shape", sorted(PG_SHAPES))
def test_postgres_online(shape: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    section = {"type": "postgres", **pg_settings(**PG_SHAPES[shape])}
    run_case(caplog, lambda: use_online(config(tmp_path, online_store=section)), BanquetError)


@pytest.mark.postgres
@pytest.mark.parametrize("shape", sorted(PG_SHAPES))
def test_postgres_offline(shape: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    section = {"type": "postgres", **pg_settings(**PG_SHAPES[shape])}

    def use() -> None:
        FeatureStore(config=config(tmp_path, offline_store=section)).offline_store.query(
            "SELECT 1 AS one"
        )

    run_case(caplog, use, BanquetError)


@pytest.mark.postgres
@pytest.mark.parametrize("shape", sorted(REGISTRY_SHAPES))
def test_sql_registry(shape: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = {"registry_type": "sql", "path": REGISTRY_SHAPES[shape]}
    run_case(
        caplog,
        lambda: FeatureStore(config=config(tmp_path, registry=registry)).list_entities(),
        BanquetError,
    )


@pytest.mark.parametrize(
    "section",
    [
        {"registry": {"registry_type": "file", "path": pg_url()}},
        {"registry": {"path": pg_url(), "bogus": 1}},
        {"online_store": {"type": "redis", "connection_string": [PW]}},
        {"online_store": {"type": "redis", "connection_string": f"h:1,password={PW}", "x": 1}},
        {"online_store": {"type": "postgres", "password": [PW]}},
        {"online_store": {"type": "postgres", "password": {"value": PW}}},
        {"online_store": {"type": "postgres", "password": PW, "port": "x"}},
        {"offline_store": {"type": "postgres", "password": [PW]}},
        {"offline_store": {"type": "postgres", "password": PW, "bogus": 1}},
    ],
    ids=lambda s: "-".join(f"{k}" for k in s) + "-" + "-".join(sorted(next(iter(s.values())))),
)
def test_config_errors(
    section: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def use() -> None:
        cfg = config(tmp_path, **section)
        store = FeatureStore(config=cfg)
        store.list_entities()
        store.online_store.read("secrets", [("v", [b"k"])])

    run_case(caplog, use, BanquetError)


def test_yaml_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A feature_store.yaml that is not valid YAML around the password, and one with the
    password in an unknown key."""
    for text in (
        f"project: p\nonline_store:\n  type: redis\n  connection_string: '{PW}\n",
        f"project: p\nonline_store:\n  type: postgres\n  password: {PW}\n  pasword: {PW}\n",
        f"project: p\nonline_store: [{PW}]\n",
    ):
        (tmp_path / "feature_store.yaml").write_text(text)
        caplog.clear()
        run_case(caplog, lambda: FeatureStore(repo_path=tmp_path), BanquetError)


def test_redaction_helper() -> None:
    """The one helper every store uses: patterns and known values."""
    assert redact_text(f"redis://:{PW}@h:1/0 and x") == "redis://:***@h:1/0 and x"
    assert redact_text(f"h:1,db=0,password={PW},ssl=true") == "h:1,db=0,password=***,ssl=true"
    assert redact_text(f"host=h password='{PW} x' user=u") == "host=h password=*** user=u"
    assert redact_text(f"{{'password': '{PW}'}}") == "{'password': '***'}"
    assert redact_text(f"server said {PW}", pg_url()) == "server said ***"
    assert redact_text(f"odd {PW_ODD} {quote(PW_ODD, safe='')}", PW_ODD) == "odd *** ***"


# --- the server ----------------------------------------------------------------------------


def serve_texts(
    tmp_path: Path, start_server: Callable[..., Any], online: str, registry: str
) -> list[str]:
    """Start ``banquet serve`` on a repo whose stores use the wrong password, request a few
    endpoints, and return every status line, body and the server's log."""
    from server_support import Server

    repo = make_repo(tmp_path / "repo", "secrets_srv")
    yaml = (repo / "feature_store.yaml").read_text()
    head, _, _ = yaml.partition("online_store:")
    (repo / "feature_store.yaml").write_text(
        head.replace("registry: data/registry.db\n", registry)
        + online
        + "offline_store:\n  type: file\n"
    )
    texts: list[str] = []
    try:
        server: Server = start_server(repo)
    except RuntimeError as e:  # refused to start: its output is what the user sees
        return [str(e)]
    for method, path, body in (
        ("GET", "/health", None),
        ("GET", "/ready", None),
        (
            "POST",
            "/get-online-features",
            {"features": ["stats:clicks"], "entities": {"user_id": [1]}},
        ),
        (
            "POST",
            "/push",
            {"push_source_name": "stats_push", "df": {"user_id": [1]}, "to": "online"},
        ),
        ("GET", "/metrics", None),
    ):
        status, answer = server.request(method, path, body)
        texts.append(f"{method} {path} -> {status} {answer}")
    texts.append(server.output())
    return texts


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.parametrize(
    "online",
    [
        f"online_store:\n  type: redis\n  connection_string: '{R_HOST}:{R_PORT},password={PW}'\n",
        f"online_store:\n  type: redis\n  connection_string: 'redis://:{PW}@{R_HOST}:{R_PORT}/0'\n",
        f"online_store:\n  type: postgres\n  host: {PG_HOST}\n  port: {PG_PORT}\n"
        f"  database: {PG_DB}\n  user: {PG_USER}\n  password: {PW}\n",
    ],
    ids=["redis-option", "redis-url", "postgres"],
)
@pytest.mark.parametrize("registry", ["file", "sql"])
def test_server_bodies_and_log(
    online: str, registry: str, tmp_path: Path, start_server: Callable[..., Any]
) -> None:
    reg = (
        "registry: data/registry.db\n"
        if registry == "file"
        else f"registry:\n  registry_type: sql\n  path: {pg_url()}\n"
    )
    texts = serve_texts(tmp_path, start_server, online, reg)
    assert_no_secret(texts, "the server")
    # /health and /ready name no address or user either
    for t in texts:
        if t.startswith(("GET /health", "GET /ready")):
            assert f"{PG_HOST}:{PG_PORT}" not in t and f"{R_HOST}:{R_PORT}" not in t, t
            assert PG_USER + "@" not in t, t


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The server tests' fixture, for this folder (see tests/server/conftest.py)."""
    from server_support import Server

    started: list[Server] = []

    def start(repo: Path, ttl: float = 0.2) -> Server:
        log = tmp_path_factory.mktemp("server-log") / "serve.log"
        server = Server(repo, log, ttl, None, [])
        started.append(server)
        server.wait_ready(timeout=20)
        return server

    yield start
    for server in started:
        server.stop()


def test_parse_of_urls_for_redis() -> None:
    """The URL forms are understood (not only refused without the password)."""
    from banquet.online.redis import parse_connection_string

    a = parse_connection_string(f"redis://u:{quote(PW_ODD, safe='')}@h:7/3")
    assert (a.host, a.port, a.db, a.username, a.password, a.ssl) == ("h", 7, 3, "u", PW_ODD, False)
    a = parse_connection_string(f"rediss://:{PW}@h")
    assert (a.host, a.port, a.db, a.password, a.ssl) == ("h", 6379, 0, PW, True)
    assert PW not in str(a) and PW not in repr(a)
    assert urlsplit("redis://h").hostname == "h"


@pytest.mark.postgres
def test_health_and_ready_name_no_address_user_or_password(
    tmp_path: Path, start_server: Callable[..., Any], pg_dsn: str
) -> None:
    """The registry's database goes away while the server runs: /health and /ready say so
    without its address, user or password (the test role may create databases: one of its
    own, dropped under the server)."""
    import uuid

    import psycopg

    db = f"secrets_{uuid.uuid4().hex[:10]}"
    u = urlsplit(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        repo = make_repo(tmp_path / "repo", "secrets_ready")
        yaml = (repo / "feature_store.yaml").read_text()
        registry_url = u._replace(path=f"/{db}").geturl()
        (repo / "feature_store.yaml").write_text(
            yaml.replace(
                "registry: data/registry.db\n",
                f"registry:\n  registry_type: sql\n  path: {registry_url}\n",
            )
        )
        FeatureStore(repo_path=repo).apply()
        server = start_server(repo)
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        texts = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until a refresh has failed
            status, body = server.request("GET", "/health")
            if status != 200:
                break
            time.sleep(0.1)
        for path in ("/health", "/ready"):
            status, body = server.request("GET", path)
            texts.append(f"{path} -> {status} {body}")
        log = server.output()
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    assert "does not exist" in log or "registry" in log  # the failure was noticed
    for text in texts:
        for shown in (u.password or "", f"{u.hostname}:{u.port}", f"{u.username}@", db):
            assert shown not in text, f"{shown!r} in {text}"
    assert u.password and u.password not in log
