"""The registry is re-read in the background: changes appear without a restart, and a broken
registry makes /health answer 503 while requests are still served from the last good copy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from server_support import Server, features_of, make_repo

from banquet import FeatureService, FeatureStore


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    repo = make_repo(tmp_path_factory.mktemp("registry") / "repo", "srv_registry")
    return start_server(repo, ttl=0.1)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


READ = {"features": ["stats:clicks"], "entities": {"user_id": [1]}}


def test_a_new_definition_is_served_without_a_restart(server: Server) -> None:
    by_service = {"feature_service": "fresh_service", "entities": {"user_id": [1]}}
    assert server.post("/get-online-features", by_service)[0] == 404
    store = FeatureStore(repo_path=server.repo)
    store.apply([FeatureService(name="fresh_service", features=[store.get_feature_view("stats")])])
    eventually(lambda: server.post("/get-online-features", by_service)[0] == 200)


def test_a_broken_registry_fails_health_but_serving_goes_on(server: Server) -> None:
    registry = server.repo / "data" / "registry.db"
    good = registry.read_bytes()
    try:
        registry.write_text("{ not json")
        eventually(lambda: server.request("GET", "/health")[0] == 503)
        status, body = server.request("GET", "/health")
        assert body["error"]["type"] == "RegistryUnavailable"
        # the body says what failed, the details (paths, addresses, users) are in the log
        assert body["error"]["message"] == "the registry cannot be read (RegistryCorrupt)"
        assert "not valid JSON" in server.output()
        status, body = server.post("/get-online-features", READ)
        assert status == 200 and features_of(body)["clicks"]["values"] == [10]
        _, text = server.request("GET", "/metrics")
        assert "banquet_registry_healthy 0" in text

        registry.unlink()  # a vanished registry is broken too, not an empty project
        time.sleep(0.3)
        assert server.request("GET", "/health")[0] == 503
        assert server.post("/get-online-features", READ)[0] == 200
    finally:
        registry.write_bytes(good)
    eventually(lambda: server.request("GET", "/health")[0] == 200)
