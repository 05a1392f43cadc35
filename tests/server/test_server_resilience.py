"""The server never blocks its event loop: a stalled store or a slow on-demand function gets
504 at the request deadline while /health answers at once, a stuck pool refuses at once with
503, /ready reports the stalled store (503) and recovers with it; requests over the feature
and entity limits are refused (413) before any store work; /ready names no address."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from server_support import Client, Server, features_of, free_port, make_repo, redis_online

from banquet import FeatureStore
from relay import TcpProxy

DEADLINE = 1.0
READ = {"features": ["stats:clicks"], "entities": {"user_id": [1]}}
GOF = "/get-online-features"


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def timed(client: Client, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
    t = time.perf_counter()
    status, answer = client.request(method, path, body)
    return status, answer, time.perf_counter() - t


def once(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
    """``timed`` on a connection of its own, closed afterwards."""
    client = Client(port)
    try:
        return timed(client, method, path, body)
    finally:
        client.close()


# --- a Redis of our own, paused with SIGSTOP (never the shared one) ------------------------------


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    folder = tmp_path_factory.mktemp("own-redis")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: _answers(port), timeout=10)
        yield proc, port
    finally:
        os.kill(proc.pid, signal.SIGCONT)  # a paused server ignores SIGTERM until resumed
        proc.terminate()
        proc.wait(timeout=10)


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def stalled_server(
    tmp_path_factory: pytest.TempPathFactory, start_server: Any, own_redis: Any
) -> Iterator[tuple[Server, subprocess.Popen]]:
    proc, port = own_redis
    # two workers, so that the test fills the pool; the store's own socket timeout (4 s) is
    # well over the request deadline, as Redis's default 10 s is over the default 2 s
    online = redis_online(f"redis://127.0.0.1:{port}/0").replace("db=0'", "db=0,socket_timeout=4'")
    server_yaml = f"feature_server:\n  request_timeout_seconds: {DEADLINE}\n  worker_threads: 2\n"
    repo = make_repo(
        tmp_path_factory.mktemp("stalled") / "repo",
        f"srv_stall_{uuid.uuid4().hex[:6]}",
        online=online,
        server_yaml=server_yaml,
    )
    yield start_server(repo), proc


@pytest.mark.redis
def test_a_stalled_store_gets_504_while_health_stays_instant(
    stalled_server: tuple[Server, subprocess.Popen],
) -> None:
    server, redis = stalled_server
    assert server.post(GOF, READ)[0] == 200  # the pool's connections are open
    assert server.request("GET", "/ready")[0] == 200
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        answers: list[tuple[int, Any, float]] = []
        readers = [
            threading.Thread(target=lambda: answers.append(once(server.port, "POST", GOF, READ)))
            for _ in range(2)
        ]  # fmt: skip
        for t in readers:
            t.start()
        health: Client = server
        slowest = 0.0
        while any(t.is_alive() for t in readers):
            status, _, took = timed(health, "GET", "/health")
            assert status == 200
            slowest = max(slowest, took)
            time.sleep(0.02)
        assert slowest < 0.1, f"/health took {slowest:.3f} s while the store stalled"
        for status, body, took in answers:
            assert status == 504 and body["error"]["type"] == "RequestTimeout", body
            assert "request_timeout_seconds" in body["error"]["message"]
            assert DEADLINE * 0.9 < took < DEADLINE + 0.8, took

        # both workers are now stuck past the deadline: a new read is refused at once
        time.sleep(0.1)
        status, body, took = once(server.port, "POST", GOF, READ)
        assert status == 503 and body["error"]["type"] == "ServerBusy", body
        assert took < 0.3, took

        status, body, took = once(server.port, "GET", "/ready")
        assert status == 503 and body["error"]["type"] == "StoreTimeout", body
        assert took < DEADLINE + 0.5, took
        assert "127.0.0.1" not in str(body) and str(server.port) not in str(body)
        assert timed(health, "GET", "/health")[0] == 200
    finally:
        os.kill(redis.pid, signal.SIGCONT)
    eventually(lambda: server.post(GOF, READ)[0] == 200)
    status, body = server.post(GOF, READ)
    assert features_of(body)["clicks"]["values"] == [10]
    eventually(lambda: server.request("GET", "/ready")[0] == 200)
    store = FeatureStore(repo_path=server.repo)
    store.teardown()
    store.online_store.close()


# --- SQLite: a slow on-demand function, limits, readiness ----------------------------------------

SLOW = """

import time as _time

from banquet import RequestSource, on_demand_feature_view

pace = RequestSource(name="pace", schema=[Field(name="delay", dtype=Float64)])


@on_demand_feature_view(
    sources=[stats, pace], schema=[Field(name="slow_clicks", dtype=Int64)], mode="python"
)
def slow(inputs: dict) -> dict:
    import time

    time.sleep(inputs["delay"][0])
    return {"slow_clicks": inputs["clicks"]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    server_yaml = (
        f"feature_server:\n  request_timeout_seconds: {DEADLINE}\n"
        "  max_features_per_request: 3\n  max_entities_per_request: 5\n"
    )
    root = tmp_path_factory.mktemp("resilience") / "repo"
    repo = make_repo(root, "srv_resilience", server_yaml=server_yaml, extra_features=SLOW)
    with (repo / "feature_store.yaml").open("a") as f:
        f.write("trust_registry_code: true\n")  # the trust rules are tested elsewhere
    return start_server(repo)


def test_a_slow_on_demand_function_gets_504_and_does_not_block_the_loop(server: Server) -> None:
    def read(delay: float) -> dict[str, Any]:
        return {"features": ["slow:slow_clicks"], "entities": {"user_id": [1], "delay": [delay]}}

    status, body = server.post(GOF, read(0.0))
    assert status == 200 and features_of(body)["slow_clicks"]["values"] == [10], body
    answers: list[tuple[int, Any, float]] = []
    slow = threading.Thread(
        target=lambda: answers.append(once(server.port, "POST", GOF, read(2.5)))
    )
    slow.start()
    health: Client = server
    slowest = 0.0
    while slow.is_alive():
        slowest = max(slowest, timed(health, "GET", "/health")[2])
        time.sleep(0.02)
    ((status, body, took),) = answers
    assert status == 504 and body["error"]["type"] == "RequestTimeout", body
    assert took < DEADLINE + 0.8
    assert slowest < 0.1, f"/health took {slowest:.3f} s while a function ran"
    # other reads go on meanwhile (the slow function still holds one worker)
    assert server.post(GOF, READ)[0] == 200


def test_too_many_features_or_entities_is_413_naming_the_setting(server: Server) -> None:
    many = {"features": [f"stats:{f}" for f in ("clicks", "score", "label", "seen")],
            "entities": {"user_id": [1]}}  # fmt: skip
    status, body = server.post(GOF, many)
    assert status == 413 and body["error"]["type"] == "TooManyFeatures", body
    assert "feature_server.max_features_per_request" in body["error"]["message"]
    assert "4" in body["error"]["message"]

    rows = {"features": ["stats:clicks"], "entities": {"user_id": list(range(6))}}
    status, body = server.post(GOF, rows)
    assert status == 413 and body["error"]["type"] == "TooManyEntities", body
    assert "feature_server.max_entities_per_request" in body["error"]["message"]

    # a feature service counts its features: model has clicks, score, age, segment
    status, body = server.post(GOF, {"feature_service": "model", "entities": {"user_id": [1]}})
    assert status == 413 and body["error"]["type"] == "TooManyFeatures", body

    # checked before anything else: an unknown feature in an oversized request is still 413
    rows["features"] = ["nope:nothing"]
    assert server.post(GOF, rows)[0] == 413
    at_limit = {"features": ["stats:clicks", "stats:score", "stats:label"],
                "entities": {"user_id": [1, 2, 3, 4, 5]}}  # fmt: skip
    status, body = server.post(GOF, at_limit)
    assert status == 200 and features_of(body)["clicks"]["values"][:2] == [10, None]


def test_ready_answers_and_names_no_address(server: Server) -> None:
    status, body = server.request("GET", "/ready")
    assert status == 200 and body["status"] == "ready" and body["registry_version"] > 0
    status, doc = server.request("GET", "/openapi.json")
    assert "/ready" in doc["paths"] and doc["paths"]["/ready"]["get"]["security"] == []
    assert "504" in doc["paths"]["/get-online-features"]["post"]["responses"]

    registry = server.repo / "data" / "registry.db"
    good = registry.read_bytes()
    try:
        registry.write_text("{ not json")
        eventually(lambda: server.request("GET", "/ready")[0] == 503)
        status, body = server.request("GET", "/ready")
        assert body["error"]["type"] == "RegistryUnavailable"
        assert str(server.repo) not in str(body) and "registry.db" not in str(body)
        assert server.request("GET", "/health")[0] == 503  # unchanged: the refresher's state
        assert server.post(GOF, READ)[0] == 200  # served from the last good copy
    finally:
        registry.write_bytes(good)
    eventually(lambda: server.request("GET", "/ready")[0] == 200)


def test_bad_server_limits_refuse_to_start(tmp_path: Path) -> None:
    import sys

    repo = make_repo(
        tmp_path / "repo",
        "srv_bad_limits",
        server_yaml="feature_server:\n  request_timeout_seconds: 0\n",
        materialize=False,
    )
    out = subprocess.run(
        [sys.executable, "-m", "banquet.cli", "-c", str(repo), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "feature_server.request_timeout_seconds" in out.stdout + out.stderr


def test_a_large_body_is_parsed_off_the_loop(server: Server) -> None:
    # 500k keys (~4 MB): parsed on a worker, refused by the entity limit before any lookup;
    # /health meanwhile waits at most for the parse's hold of the GIL (~10 ms per MB)
    big = {"features": ["stats:clicks"], "entities": {"user_id": list(range(500_000))}}
    answers: list[tuple[int, Any, float]] = []
    sender = threading.Thread(target=lambda: answers.append(once(server.port, "POST", GOF, big)))
    sender.start()
    slowest = 0.0
    while sender.is_alive():
        slowest = max(slowest, timed(server, "GET", "/health")[2])
    ((status, body, _),) = answers
    assert status == 413 and body["error"]["type"] == "TooManyEntities", body
    assert slowest < 0.3, f"/health took {slowest:.3f} s while a large body was parsed"


# --- Postgres behind a relay that can swallow requests (the shared server is never paused) -------


@pytest.mark.postgres
def test_a_stalled_postgres_gets_504_and_ready_503(
    tmp_path: Path, start_server: Any, pg_dsn: str
) -> None:
    from psycopg.conninfo import conninfo_to_dict

    pg = conninfo_to_dict(pg_dsn)
    relay = TcpProxy(str(pg.get("host", "127.0.0.1")), int(pg.get("port", 5432)))
    os.environ["SRV_RESILIENCE_PG_PASSWORD"] = str(pg.get("password", ""))
    online = (
        "online_store:\n  type: postgres\n  host: 127.0.0.1\n"
        f"  port: {relay.port}\n  database: {pg.get('dbname')}\n  user: {pg.get('user')}\n"
        "  password: ${SRV_RESILIENCE_PG_PASSWORD}\n  timeout_seconds: 3\n"
    )
    project = f"srv_pgstall_{uuid.uuid4().hex[:6]}"
    server_yaml = f"feature_server:\n  request_timeout_seconds: {DEADLINE}\n"
    repo = make_repo(tmp_path / "repo", project, online=online, server_yaml=server_yaml)
    try:
        server = start_server(repo)
        assert server.post(GOF, READ)[0] == 200
        assert server.request("GET", "/ready")[0] == 200
        time.sleep(0.6)  # past the cached readiness answer
        relay.hold()
        status, body, took = once(server.port, "POST", GOF, READ)
        assert status == 504 and body["error"]["type"] == "RequestTimeout", body
        assert took < DEADLINE + 0.8
        status, body, took = once(server.port, "GET", "/ready")
        assert status == 503 and body["error"]["type"] == "StoreTimeout", body
        assert took < DEADLINE + 0.5
        assert str(relay.port) not in str(body) and str(pg.get("user")) not in str(body)
        assert timed(server, "GET", "/health")[2] < 0.1
        relay.release()  # the held connections are cut by the store's watchdog (3 s)
        eventually(lambda: server.post(GOF, READ)[0] == 200)
        eventually(lambda: server.request("GET", "/ready")[0] == 200)
    finally:
        relay.release()
        store = FeatureStore(repo_path=repo)
        store.teardown()
        store.online_store.close()
        relay.kill()
        os.environ.pop("SRV_RESILIENCE_PG_PASSWORD", None)
