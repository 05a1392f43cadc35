"""Bearer-token auth: without a valid token every endpoint but /health and /ready answers 401
and nothing is read or written; tokens come from the environment."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from server_support import NOW, Server, features_of, free_port, make_repo

AUTH_YAML = "feature_server:\n  auth:\n    type: token\n    tokens_env: SRV_TEST_TOKENS\n"
TOKENS = "tok-alpha-1234,tok-beta-5678"
GOOD = {"Authorization": "Bearer tok-beta-5678"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_repo(tmp_path_factory.mktemp("auth") / "repo", "srv_auth", server_yaml=AUTH_YAML)


@pytest.fixture(scope="module")
def server(repo: Any, start_server: Any) -> Server:
    return start_server(repo, env={"SRV_TEST_TOKENS": TOKENS})


READ = {"features": ["stats:clicks"], "entities": {"user_id": [1]}}
PUSH = {
    "push_source_name": "stats_push",
    "df": {
        "user_id": [901],
        "event_timestamp": [NOW.isoformat()],
        "clicks": [9],
        "score": [0.5],
        "label": ["x"],
        "seen": [None],
        "blob": [None],
        "tags": [None],
    },
}
ENDPOINTS = [
    ("POST", "/get-online-features", READ),
    ("POST", "/push", PUSH),
    ("POST", "/write-to-online-store", {"feature_view_name": "stats", "df": PUSH["df"]}),
    ("POST", "/materialize", {"start_ts": "2024-01-01", "end_ts": "2024-01-02"}),
    ("POST", "/materialize-incremental", {"end_ts": "2024-01-02"}),
    ("GET", "/metrics", None),
    ("GET", "/openapi.json", None),
]
BAD_HEADERS = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": "Bearer tok-beta-567"},  # a prefix of a real token
    {"Authorization": "tok-beta-5678"},  # no scheme
    {"Authorization": "Basic dG9rLWJldGEtNTY3OA=="},
    {"Authorization": "Bearer "},
]


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=lambda h: h.get("Authorization", "none"))
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
def test_without_a_valid_token_is_401(
    server: Server, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    status, answer = server.request(method, path, body, headers=headers)
    assert status == 401, answer
    assert answer["error"]["type"] == "Unauthorized"


def test_nothing_is_written_without_a_token(server: Server) -> None:
    # the unauthenticated pushes and writes above (and these) wrote nothing
    server.post("/push", PUSH, headers={"Authorization": "Bearer nope"})
    status, body = server.post(
        "/get-online-features",
        {"features": ["stats:clicks"], "entities": {"user_id": [901]}},
        headers=GOOD,
    )
    assert status == 200
    assert features_of(body)["clicks"]["statuses"] == ["NOT_FOUND"]


def test_a_valid_token_works_and_health_is_public(server: Server) -> None:
    assert server.request("GET", "/health")[0] == 200
    assert server.request("GET", "/ready")[0] == 200  # readiness probes carry no token
    status, body = server.post("/get-online-features", READ, headers=GOOD)
    assert status == 200 and features_of(body)["clicks"]["values"] == [10]
    other = {"Authorization": "bearer tok-alpha-1234"}  # the scheme is case-insensitive
    assert server.post("/push", PUSH, headers=other) == (200, None)
    _, body = server.post(
        "/get-online-features",
        {"features": ["stats:clicks"], "entities": {"user_id": [901]}},
        headers=other,
    )
    assert features_of(body)["clicks"]["values"] == [9]


def test_token_auth_without_tokens_refuses_to_start(repo: Any) -> None:
    cmd = [sys.executable, "-m", "banquet.cli", "-c", str(repo), "serve"]
    cmd += ["--port", str(free_port())]
    env = {k: v for k, v in __import__("os").environ.items() if k != "SRV_TEST_TOKENS"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert "SRV_TEST_TOKENS" in done.stderr and "Error:" in done.stderr
