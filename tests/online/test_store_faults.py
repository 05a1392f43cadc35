"""The server stores when their server goes away, hangs, restarts or forgets the script: a
typed StoreUnavailable, quickly, never a hang; then recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from store_support import pg_store, redis_store, stop_server, view

from banquet.errors import ConfigError, StoreUnavailable
from banquet.online.base import rows_batch
from banquet.online.postgres import PostgresOnlineStore

if TYPE_CHECKING:
    from conftest import Backend
    from relay import TcpProxy


@pytest.mark.redis
def test_redis_server_gone_mid_request(
    redis_url: str, tcp_proxy: Callable[[str, int], TcpProxy], tmp_path: Path
) -> None:
    from urllib.parse import urlsplit

    u = urlsplit(redis_url)
    proxy = tcp_proxy(u.hostname or "127.0.0.1", u.port or 6379)
    project = "t" + os.urandom(6).hex()
    auth = {"password": u.password} if u.password else {}  # the local Redis has requirepass
    # a long socket timeout: the error must come from the lost server, not from a timeout
    s = redis_store(tmp_path, proxy.port, socket_timeout=60, **auth)
    direct = redis_store(tmp_path, u.port or 6379, **auth)
    try:
        s.write(project, "v", rows_batch([b"k"], [1], [0], [b"x"]))
        assert s.read(project, [("v", [b"k"])]) == [[b"x"]]
        _fails_when_the_server_goes_mid_request(
            proxy,
            lambda: s.read(project, [("v", [b"k"])]),
            f"Redis online store at 127.0.0.1:{proxy.port}",
        )
    finally:
        direct.teardown(project)
        direct.close()
        s.close()


def _fails_when_the_server_goes_mid_request(
    proxy: TcpProxy, call: Callable[[], Any], names: str
) -> None:
    """``call`` is sent, the server goes away before it answers: a StoreUnavailable naming
    the store and its address, within seconds."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - checked below
            outcome.append(e)

    proxy.hold()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert proxy.swallowed.wait(5), "the request never reached the proxy"
    time.sleep(0.05)
    t = time.monotonic()
    proxy.kill()
    thread.join(5)
    assert not thread.is_alive(), "hung after the server went away"
    assert time.monotonic() - t < 3
    (error,) = outcome
    assert isinstance(error, StoreUnavailable), repr(error)
    assert names in str(error) and "unavailable" in str(error)


def test_redis_nothing_listening_is_store_unavailable(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    s = redis_store(tmp_path, port, socket_connect_timeout=2)
    calls = [
        lambda: s.read("gone", [("v", [b"k"])]),
        lambda: s.read("gone", [("v", [b"k", b"j"]), ("w", [b"k"])]),
        lambda: s.write("gone", "v", rows_batch([b"k"], [1], [0], [b"x"])),
        lambda: s.create_view("gone", view("v")),
        lambda: s.drop_view("gone", "v"),
        lambda: s.teardown("gone"),
    ]
    for call in calls:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"Redis online store at 127.0.0.1:{port}"):
            call()
        assert time.monotonic() - t < 3
    with pytest.raises(ConnectionError):  # StoreUnavailable is also a ConnectionError
        s.read("gone", [("v", [b"k"])])
    s.close()


@pytest.fixture
def throwaway_redis(
    tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """``start()`` runs a private redis-server on a free loopback port (``.port``); every
    server it started is stopped after the test."""
    import shutil

    if shutil.which("redis-server") is None:
        pytest.fail("no redis-server binary: run `make services` (it installs it)", pytrace=False)
    procs: list[subprocess.Popen[bytes]] = []
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        proc.port = port  # type: ignore[attr-defined]
        import redis

        client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
            finally:
                client.close()
        return proc

    yield start
    for proc in procs:
        stop_server(proc)


@pytest.mark.redis
def test_redis_server_stopping_and_coming_back(
    throwaway_redis: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    server = throwaway_redis()
    s = redis_store(tmp_path, server.port, socket_timeout=2)  # type: ignore[attr-defined]
    s.create_view("gone", view("v"))
    s.write("gone", "v", rows_batch([b"k"], [1], [0], [b"x"]))
    assert s.read("gone", [("v", [b"k"])]) == [[b"x"]]

    server.terminate()
    server.wait(10)
    for call in (
        lambda: s.read("gone", [("v", [b"k"])]),
        lambda: s.write("gone", "v", rows_batch([b"k"], [2], [0], [b"y"])),
    ):
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            call()
        assert time.monotonic() - t < 3

    throwaway_redis()  # a new, empty server on the same port: the same store object recovers
    assert s.read("gone", [("v", [b"k"])]) == [[None]]
    s.write("gone", "v", rows_batch([b"k"], [3], [0], [b"z"]))  # the write script is loaded again
    assert s.read("gone", [("v", [b"k"])]) == [[b"z"]]
    s.close()


@pytest.mark.redis
def test_redis_scripts_flushed_are_reloaded(
    throwaway_redis: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    import redis

    server = throwaway_redis()
    s = redis_store(tmp_path, server.port)  # type: ignore[attr-defined]
    s.write("gone", "v", rows_batch([b"k"], [1], [0], [b"a"]))
    client = redis.Redis(port=server.port, socket_timeout=5)  # type: ignore[attr-defined]
    client.script_flush()
    client.close()
    s.write("gone", "v", rows_batch([b"k", b"j"], [2, 2], [0, 0], [b"b", b"c"]))
    assert s.read("gone", [("v", [b"k", b"j"])]) == [[b"b", b"c"]]
    s.close()


@pytest.mark.redis
def test_redis_server_hanging_times_out(
    throwaway_redis: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    server = throwaway_redis()
    s = redis_store(tmp_path, server.port, socket_timeout=0.5)  # type: ignore[attr-defined]
    s.write("gone", "v", rows_batch([b"k"], [1], [0], [b"x"]))
    server.send_signal(signal.SIGSTOP)  # alive, but answers nothing
    try:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            s.read("gone", [("v", [b"k"])])
        assert time.monotonic() - t < 3
    finally:
        server.send_signal(signal.SIGCONT)
    assert s.read("gone", [("v", [b"k"])]) == [[b"x"]]
    s.close()


def test_postgres_nothing_listening_is_store_unavailable(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    s = pg_store(tmp_path, host="127.0.0.1", port=port)
    calls = [
        lambda: s.read("gone", [("v", [b"k"])]),
        lambda: s.write("gone", "v", rows_batch([b"k"], [1], [0], [b"x"])),
        lambda: s.create_view("gone", view("v")),
        lambda: s.drop_view("gone", "v"),
        lambda: s.teardown("gone"),
    ]
    for call in calls:
        t = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"Postgres online store at 127.0.0.1:{port}"):
            call()
        assert time.monotonic() - t < 3
    s.close()


@pytest.mark.postgres
def test_postgres_connection_lost_then_server_gone(
    postgres_backend: Backend, free_port: Callable[[], int]
) -> None:
    import dataclasses

    import psycopg

    p = postgres_backend.project
    s = postgres_backend.open(min_conn=1, max_conn=1)
    assert isinstance(s, PostgresOnlineStore)
    s.create_view(p, view("v"))
    s.write(p, "v", rows_batch([b"k"], [1], [0], [b"x"]))

    def backend_pid(conn: psycopg.Connection[Any]) -> int:
        return conn.info.backend_pid

    def kill_pool_connection() -> None:
        pid = s._run("pid", backend_pid)
        with psycopg.connect(postgres_backend.pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    # a pooled connection the server dropped (a restart): retried once, transparently
    kill_pool_connection()
    assert s.read(p, [("v", [b"k"])]) == [[b"x"]]
    kill_pool_connection()
    s.write(p, "v", rows_batch([b"k"], [2], [0], [b"y"]))
    assert s.read(p, [("v", [b"k"])]) == [[b"y"]]

    # the server goes away for good (its address now leads nowhere): typed, quick
    kill_pool_connection()
    s.cfg = dataclasses.replace(s.cfg, port=free_port())
    t = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        s.read(p, [("v", [b"k"])])
    assert time.monotonic() - t < 3


@pytest.mark.postgres
def test_postgres_server_gone_mid_request(
    postgres_backend: Backend,
    tcp_proxy: Callable[[str, int], TcpProxy],
    postgres_settings: Callable[[str], dict[str, Any]],
) -> None:
    p = postgres_backend.project
    settings = postgres_settings(postgres_backend.pg_dsn)
    proxy = tcp_proxy(settings["host"], settings["port"])
    s = postgres_backend.open(host="127.0.0.1", port=proxy.port)
    s.create_view(p, view("v"))
    s.write(p, "v", rows_batch([b"k"], [1], [0], [b"x"]))
    assert s.read(p, [("v", [b"k"])]) == [[b"x"]]
    _fails_when_the_server_goes_mid_request(
        proxy,
        lambda: s.read(p, [("v", [b"k"])]),
        f"Postgres online store at 127.0.0.1:{proxy.port}",
    )


def test_postgres_server_stalling_times_out(
    postgres_backend: Backend,
    tcp_proxy: Callable[[str, int], TcpProxy],
    postgres_settings: Callable[[str], dict[str, Any]],
) -> None:
    """A server that takes the request and never answers: StoreUnavailable after
    timeout_seconds (libpq alone would wait forever), then the store works again."""
    p = postgres_backend.project
    settings = postgres_settings(postgres_backend.pg_dsn)
    proxy = tcp_proxy(settings["host"], settings["port"])
    s = postgres_backend.open(host="127.0.0.1", port=proxy.port, timeout_seconds=0.5)
    s.create_view(p, view("v"))
    s.write(p, "v", rows_batch([b"k"], [1], [0], [b"x"]))
    proxy.hold()
    t = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"no answer within 0.5 s \(timeout_seconds\)"):
        s.read(p, [("v", [b"k"])])
    assert time.monotonic() - t < 3
    with pytest.raises(StoreUnavailable, match="write to feature view 'v'.*no answer"):
        s.write(p, "v", rows_batch([b"k"], [2], [0], [b"y"]))
    direct = postgres_backend.open()  # the server itself is fine
    assert direct.read(p, [("v", [b"k"])]) == [[b"x"]]
    with pytest.raises(ConfigError, match="timeout_seconds"):
        postgres_backend.open(timeout_seconds=0)


@pytest.mark.redis
def test_redis_every_path_reruns_once_after_the_server_closed_its_idle_connections(
    throwaway_redis: Callable[[], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """Reads, HSETNX writes and script writes (with and without a key ttl) all borrow their
    connections through one helper: pooled connections the server closed meanwhile (here:
    CLIENT KILL, as a restart or an idle timeout would) are dropped and the call succeeds on
    fresh ones, without an error."""
    import redis

    server = throwaway_redis()
    port = server.port  # type: ignore[attr-defined]
    plain = redis_store(tmp_path, port)
    with_ttl = redis_store(tmp_path, port, socket_timeout=5)
    with_ttl.key_ttl_seconds = 3600  # writes go through the script only
    admin = redis.Redis(port=port, socket_timeout=5)
    n = 3
    keys = [b"k%d" % i for i in range(n)]

    def kill_idle() -> None:
        for s in (plain, with_ttl):
            assert any(node.idle for node in s._topology().nodes)  # something to go stale
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1

    steps = [
        lambda: plain.write("p", "v", rows_batch(keys, [1] * n, [0] * n, [b"a"] * n)),  # HSETNX
        lambda: plain.write("p", "v", rows_batch(keys, [2] * n, [0] * n, [b"b"] * n)),  # script
        lambda: with_ttl.write(
            "p", "v", rows_batch(keys, [3] * n, [0] * n, [b"c"] * n)
        ),  # script + ttl
        lambda: plain.read("p", [("v", keys)]),
    ]
    try:
        plain.read("p", [("v", keys)])
        with_ttl.read("p", [("v", keys)])
        for step in steps:
            kill_idle()
            step()
            with_ttl.read("p", [("v", keys)])  # refill the other store's pool
        assert plain.read("p", [("v", keys)]) == [[b"c"] * n]
        assert admin.ttl(b"p:k0") > 0
    finally:
        plain.close()
        with_ttl.close()
        admin.close()
