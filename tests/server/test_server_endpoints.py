"""Every endpoint of a real ``banquet serve`` on the embedded (SQLite) online store, with
Feast's request and response shapes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
from server_support import NOW, T0, Server, features_of, make_repo

EPOCH = "1970-01-01T00:00:00Z"


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    repo = make_repo(tmp_path_factory.mktemp("endpoints") / "repo", "srv_endpoints")
    return start_server(repo)


def test_get_online_features_is_column_major_keys_first_request_order(server: Server) -> None:
    refs = ["stats:score", "profile:age", "stats:clicks", "stats:label", "stats:seen"]
    refs += ["stats:blob", "stats:tags"]
    status, body = server.post(
        "/get-online-features", {"features": refs, "entities": {"user_id": [1, 2, 9]}}
    )
    assert status == 200, body
    assert body["metadata"]["feature_names"] == [
        "user_id", "score", "age", "clicks", "label", "seen", "blob", "tags",
    ]  # fmt: skip
    got = features_of(body)
    assert got["user_id"] == {
        "values": [1, 2, 9],
        "statuses": ["PRESENT"] * 3,
        "event_timestamps": [EPOCH] * 3,
    }
    t = [rfc3339(T0), rfc3339(T0 + timedelta(minutes=1)), EPOCH]
    assert got["score"] == {
        "values": [0.5, 1.5, None],
        "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
        "event_timestamps": t,
    }
    assert got["clicks"]["values"] == [10, None, None]
    assert got["clicks"]["statuses"] == ["PRESENT", "NULL_VALUE", "NOT_FOUND"]
    assert got["age"]["values"] == [30, 40, None]
    assert got["age"]["event_timestamps"] == [rfc3339(T0), rfc3339(T0), EPOCH]
    assert got["label"]["values"] == ["a", "b", None]
    seen = int(T0.timestamp())
    assert got["seen"]["values"] == [seen, seen, None]  # Unix seconds, as Feast writes them
    assert got["blob"]["values"] == ["AAE=", "eA==", None]  # base64
    assert got["tags"]["values"] == [["x", "y"], [], None]


def test_feature_service_and_full_feature_names(server: Server) -> None:
    status, body = server.post(
        "/get-online-features",
        {"feature_service": "model", "entities": {"user_id": [2]}, "full_feature_names": True},
    )
    assert status == 200, body
    assert body["metadata"]["feature_names"] == [
        "user_id", "stats__clicks", "stats__score", "profile__age", "profile__segment",
    ]  # fmt: skip
    assert [r["values"] for r in body["results"]] == [[2], [None], [1.5], [40], ["new"]]


def test_push_online_then_read_back(server: Server) -> None:
    row = {
        "user_id": [101, 102],
        "event_timestamp": [rfc3339(NOW), "2024-06-01 00:00:00"],  # ISO with Z, naive = UTC
        "created": [None, None],
        "clicks": [7, 8],
        "score": [1, 2.5],  # ints into a float feature
        "label": ["p", "q"],
        "seen": [1700000000, "2024-01-01T00:00:00+01:00"],  # Unix seconds or ISO
        "blob": ["aGk=", None],
        "tags": [["t"], None],
    }
    status, body = server.post("/push", {"push_source_name": "stats_push", "df": row})
    assert (status, body) == (200, None)
    status, body = server.post(
        "/get-online-features",
        {
            "features": [
                "stats:clicks",
                "stats:score",
                "stats:seen",
                "stats:blob",
                "stats_small:clicks",
            ],
            "entities": {"user_id": [101, 102]},
            "full_feature_names": True,
        },
    )
    assert status == 200, body
    got = features_of(body)
    assert got["stats__clicks"]["values"] == [7, 8]
    assert got["stats__score"]["values"] == [1.0, 2.5]
    assert got["stats__seen"]["values"] == [1700000000, 1704063600]
    assert got["stats__blob"]["values"] == ["aGk=", None]
    assert got["stats_small__clicks"]["values"] == [7, 8]  # every view the source feeds
    assert got["stats__clicks"]["event_timestamps"] == [rfc3339(NOW), "2024-06-01T00:00:00Z"]


def test_push_offline_appends_to_the_batch_source_only(server: Server) -> None:
    parts = set((server.repo / "data" / "events").iterdir())
    row = {"user_id": [201], "event_timestamp": [rfc3339(NOW)], "clicks": [1], "score": [0.0]}
    row |= {"label": ["o"], "seen": [None], "blob": [None], "tags": [None]}
    status, body = server.post(
        "/push", {"push_source_name": "stats_push", "df": row, "to": "offline"}
    )
    assert (status, body) == (200, None)
    status, body = server.post(
        "/get-online-features", {"features": ["stats:clicks"], "entities": {"user_id": [201]}}
    )
    assert features_of(body)["clicks"]["statuses"] == ["NOT_FOUND"]
    new = set((server.repo / "data" / "events").iterdir()) - parts
    assert len(new) == 1
    table = pq.read_table(new.pop())
    assert table.column("user_id").to_pylist() == [201]


def test_write_to_online_store(server: Server) -> None:
    df = {"user_id": [301], "event_timestamp": [rfc3339(NOW)], "clicks": [5]}
    status, body = server.post(
        "/write-to-online-store", {"feature_view_name": "stats_small", "df": df}
    )
    assert (status, body) == (200, None)
    status, body = server.post(
        "/get-online-features", {"features": ["stats_small:clicks"], "entities": {"user_id": [301]}}
    )
    assert features_of(body)["clicks"]["values"] == [5]


def test_health_openapi_and_metrics(server: Server) -> None:
    status, body = server.request("GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["registry_version"] > 0
    status, doc = server.request("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for path in ("/get-online-features", "/push", "/write-to-online-store", "/materialize",
                 "/materialize-incremental", "/health", "/metrics"):  # fmt: skip
        assert path in doc["paths"]
    server.post(
        "/get-online-features", {"features": ["stats:clicks"], "entities": {"user_id": [1]}}
    )
    status, text = server.request("GET", "/metrics")
    assert status == 200
    assert 'banquet_server_requests_total{endpoint="/get-online-features",status="200"}' in text
    assert (
        'banquet_server_request_duration_seconds_bucket{endpoint="/get-online-features",le="+Inf"}'
        in text
    )
    assert 'banquet_feature_age_seconds_count{feature_view="stats"}' in text
    assert "banquet_registry_healthy 1" in text
    # the value served for user 1 is ~2 hours old: counted in the (1 h, 6 h] bucket
    age = {
        line.split('le="')[1].split('"')[0]: int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('banquet_feature_age_seconds_bucket{feature_view="stats"')
    }
    assert age["21600"] - age["3600"] >= 1


@pytest.fixture(scope="module")
def unmaterialized(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    repo = tmp_path_factory.mktemp("materialize") / "repo"
    return start_server(make_repo(repo, "srv_materialize", materialize=False))


def test_materialize_and_materialize_incremental(unmaterialized: Server) -> None:
    server = unmaterialized
    read = {"features": ["profile:age", "stats:clicks"], "entities": {"user_id": [1]}}
    _, body = server.post("/get-online-features", read)
    assert [r["statuses"] for r in body["results"][1:]] == [["NOT_FOUND"], ["NOT_FOUND"]]
    start = rfc3339(T0 - timedelta(days=1))
    status, body = server.post(
        "/materialize",
        {
            "start_ts": start,
            "end_ts": rfc3339(NOW + timedelta(minutes=1)),
            "feature_views": ["profile"],
        },
    )
    assert (status, body) == (200, None)
    _, body = server.post("/get-online-features", read)
    assert [r["values"] for r in body["results"][1:]] == [[30], [None]]
    status, body = server.post(
        "/materialize-incremental", {"end_ts": rfc3339(NOW + timedelta(minutes=1))}
    )
    assert (status, body) == (200, None)
    _, body = server.post("/get-online-features", read)
    assert [r["values"] for r in body["results"][1:]] == [[30], [10]]


def test_several_workers_serve_the_same_answers(
    tmp_path_factory: pytest.TempPathFactory, start_server: Any
) -> None:
    repo = make_repo(tmp_path_factory.mktemp("workers") / "repo", "srv_workers")
    server = start_server(repo, args=("--workers", "2"))
    request = {"features": ["stats:clicks", "profile:age"], "entities": {"user_id": [1, 3]}}
    answers = set()
    for _ in range(6):  # a new connection each time, so both workers are likely asked
        server.close()
        status, body = server.post("/get-online-features", request)
        assert status == 200, body
        answers.add(str([r["values"] for r in body["results"]]))
    assert answers == {str([[1, 3], [10, 30], [30, None]])}
