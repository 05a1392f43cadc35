"""The server on the Redis online store: reads, pushes, materialization and the concurrent
load with no lost pushes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from load import run_load
from server_support import NOW, Server, features_of, make_repo, redis_online

from banquet import FeatureStore

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, start_server: Any, redis_url: str
) -> Iterator[Server]:
    project = f"srv_redis_{uuid.uuid4().hex[:8]}"
    repo = make_repo(
        tmp_path_factory.mktemp("redis") / "repo", project, online=redis_online(redis_url)
    )
    yield start_server(repo)
    store = FeatureStore(repo_path=repo)
    store.teardown()  # the project's keys leave the shared Redis
    store.online_store.close()


def test_reads_come_from_redis(server: Server) -> None:
    status, body = server.post(
        "/get-online-features",
        {"feature_service": "model", "entities": {"user_id": [1, 2, 9]}},
    )
    assert status == 200, body
    got = features_of(body)
    assert got["clicks"]["values"] == [10, None, None]
    assert got["clicks"]["statuses"] == ["PRESENT", "NULL_VALUE", "NOT_FOUND"]
    assert got["age"]["values"] == [30, 40, None]


def test_push_and_write_then_read(server: Server) -> None:
    df = {
        "user_id": [77],
        "event_timestamp": [NOW.isoformat()],
        "clicks": [70],
        "score": [7.5],
        "label": ["r"],
    }
    df |= {"seen": [None], "blob": ["cmVk"], "tags": [["a", None]]}
    assert server.post("/push", {"push_source_name": "stats_push", "df": df}) == (200, None)
    small = {"user_id": [78], "event_timestamp": [NOW.isoformat()], "clicks": [80]}
    assert server.post(
        "/write-to-online-store", {"feature_view_name": "stats_small", "df": small}
    ) == (200, None)
    _, body = server.post(
        "/get-online-features",
        {
            "features": ["stats:clicks", "stats:blob", "stats:tags", "stats_small:clicks"],
            "entities": {"user_id": [77, 78]},
            "full_feature_names": True,
        },
    )
    got = features_of(body)
    assert got["stats__clicks"]["values"] == [70, None]
    assert got["stats__blob"]["values"] == ["cmVk", None]
    assert got["stats__tags"]["values"] == [["a", None], None]
    assert got["stats_small__clicks"]["values"] == [70, 80]


def test_concurrent_pushes_and_reads_lose_nothing(server: Server) -> None:
    result = run_load(server, seconds=2.5, pushers=2, readers=2)
    assert result["failures"] == []
    assert result["push"] > 20 and result["read"] > 20, result
