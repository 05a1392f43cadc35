"""Every client mistake is a 4xx with ``{"error": {"type", "message"}}``, and a rejected
write leaves the online and offline stores as they were."""

from __future__ import annotations

from typing import Any

import pytest
from server_support import NOW, Server, features_of, make_repo

GOF = "/get-online-features"
LIMIT = 100_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    repo = make_repo(
        tmp_path_factory.mktemp("errors") / "repo",
        "srv_errors",
        server_yaml=f"feature_server:\n  max_request_bytes: {LIMIT}\n",
    )
    return start_server(repo)


def good_row(uid: int, **change: Any) -> dict[str, list[Any]]:
    row: dict[str, list[Any]] = {
        "user_id": [uid],
        "event_timestamp": [NOW.isoformat()],
        "clicks": [1],
        "score": [0.5],
        "label": ["l"],
        "seen": [None],
        "blob": [None],
        "tags": [None],
    }
    row.update(change)
    return {k: v for k, v in row.items() if v is not None}


TWO_ROWS_MIXED_LABEL = {
    "user_id": [1, 2],
    "event_timestamp": [NOW.isoformat()] * 2,
    "clicks": [1, 2],
    "score": [0.5, 1.0],
    "label": [1, "a"],  # a number and a string in one column
}


def read(uid: int) -> dict[str, Any]:
    return {"features": ["stats:clicks"], "entities": {"user_id": [uid]}}


CASES = [
    # (id, path, body (bytes are sent raw), status, error type)
    ("malformed json", GOF, b'{"features": [', 400, "InvalidJSON"),
    ("empty body", GOF, b"", 400, "InvalidJSON"),
    ("not an object", GOF, [1, 2], 400, "InvalidRequest"),
    ("no features", GOF, {"entities": {"user_id": [1]}}, 400, "InvalidRequest"),
    (
        "features and service",
        GOF,
        {"features": ["stats:clicks"], "feature_service": "model", "entities": {"user_id": [1]}},
        400,
        "InvalidRequest",
    ),
    ("features not a list", GOF, {"features": "stats:clicks", "entities": {}}, 400, "InvalidRequest"),
    ("bad ref", GOF, {"features": ["clicks"], "entities": {"user_id": [1]}}, 400, "InvalidFeatureRef"),
    ("unknown view", GOF, {"features": ["nope:x"], "entities": {"user_id": [1]}}, 404, "FeatureViewNotFound"),
    ("unknown feature", GOF, {"features": ["stats:nope"], "entities": {"user_id": [1]}}, 404, "FeatureNotFound"),
    ("unknown service", GOF, {"feature_service": "nope", "entities": {"user_id": [1]}}, 404, "FeatureServiceNotFound"),
    ("missing join key", GOF, {"features": ["stats:clicks"], "entities": {"uid": [1]}}, 400, "MissingJoinKeyError"),
    ("no entities", GOF, {"features": ["stats:clicks"]}, 400, "InvalidRequest"),
    ("entities not columns", GOF, {"features": ["stats:clicks"], "entities": {"user_id": 1}}, 400, "InvalidRequest"),
    ("ragged entities", GOF, {"features": ["stats:clicks"], "entities": {"user_id": [1], "x": [1, 2]}}, 400, "InvalidRequest"),
    ("string key", GOF, {"features": ["stats:clicks"], "entities": {"user_id": ["a"]}}, 400, "KeyTypeError"),
    ("fractional key", GOF, {"features": ["stats:clicks"], "entities": {"user_id": [1.5]}}, 400, "KeyTypeError"),
    ("null key", GOF, {"features": ["stats:clicks"], "entities": {"user_id": [None]}}, 400, "KeyTypeError"),
    ("object key", GOF, {"features": ["stats:clicks"], "entities": {"user_id": [{}]}}, 400, "InvalidRequest"),
    ("huge key", GOF, {"features": ["stats:clicks"], "entities": {"user_id": [2**64 - 1]}}, 400, "KeyTypeError"),
    ("full names not bool", GOF, {"features": ["stats:clicks"], "entities": {"user_id": [1]}, "full_feature_names": "yes"}, 400, "InvalidRequest"),
    ("name collision", GOF, {"features": ["stats:clicks", "stats_small:clicks"], "entities": {"user_id": [1]}}, 400, "FeatureNameCollisionError"),
    ("unknown push source", "/push", {"push_source_name": "nope", "df": good_row(1)}, 404, "DataSourceNotFound"),
    ("not a push source", "/push", {"push_source_name": "profiles", "df": good_row(1)}, 400, "NotAPushSource"),
    ("push without df", "/push", {"push_source_name": "stats_push"}, 400, "InvalidRequest"),
    ("push bad mode", "/push", {"push_source_name": "stats_push", "df": good_row(1), "to": "disk"}, 400, "InvalidRequest"),
    ("push missing column", "/push", {"push_source_name": "stats_push", "df": good_row(1, score=None)}, 400, "SchemaMismatch"),
    ("push wrong type", "/push", {"push_source_name": "stats_push", "df": good_row(1, clicks=["x"])}, 400, "SchemaMismatch"),
    ("push lossy float", "/push", {"push_source_name": "stats_push", "df": good_row(1, clicks=[1.5])}, 400, "SchemaMismatch"),
    ("push bad time", "/push", {"push_source_name": "stats_push", "df": good_row(1, event_timestamp=["yesterday"])}, 400, "InvalidRequest"),
    ("push null time", "/push", {"push_source_name": "stats_push", "df": good_row(1, event_timestamp=[None])}, 400, "InvalidRequest"),
    ("push null key", "/push", {"push_source_name": "stats_push", "df": good_row(1, user_id=[None])}, 400, "InvalidRequest"),
    ("push bad base64", "/push", {"push_source_name": "stats_push", "df": good_row(1, blob=["@@"])}, 400, "InvalidRequest"),
    ("push mixed types", "/push", {"push_source_name": "stats_push", "df": TWO_ROWS_MIXED_LABEL}, 400, "InvalidRequest"),
    ("write unknown view", "/write-to-online-store", {"feature_view_name": "nope", "df": good_row(1)}, 404, "FeatureViewNotFound"),
    ("write missing column", "/write-to-online-store", {"feature_view_name": "stats", "df": good_row(1, label=None)}, 400, "SchemaMismatch"),
    ("materialize no end", "/materialize", {"start_ts": "2024-01-01"}, 400, "InvalidRequest"),
    ("materialize bad time", "/materialize", {"start_ts": "soon", "end_ts": "2024-01-01"}, 400, "InvalidRequest"),
    ("materialize reversed", "/materialize", {"start_ts": "2025-01-01", "end_ts": "2024-01-01"}, 400, "InvalidRequest"),
    ("materialize unknown view", "/materialize", {"start_ts": "2024-01-01", "end_ts": "2025-01-01", "feature_views": ["nope"]}, 404, "FeatureViewNotFound"),
    ("incremental bad views", "/materialize-incremental", {"end_ts": "2024-01-01", "feature_views": "stats"}, 400, "InvalidRequest"),
    ("unknown endpoint", "/get-features", {}, 404, "NotFound"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "status", "kind"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_client_mistake_is_a_4xx_with_a_typed_error(
    server: Server, path: str, body: Any, status: int, kind: str
) -> None:
    if isinstance(body, bytes):
        got, answer = server.request("POST", path, raw=body)
    else:
        got, answer = server.post(path, body)
    assert (got, answer["error"]["type"]) == (status, kind), answer
    assert answer["error"]["message"]


def test_wrong_method_is_405(server: Server) -> None:
    status, body = server.request("GET", GOF)
    assert status == 405 and body["error"]["type"] == "MethodNotAllowed"
    status, body = server.request("POST", "/health", {})
    assert status == 405


def test_body_over_the_limit_is_413(server: Server) -> None:
    big = {"features": ["stats:clicks"], "entities": {"user_id": list(range(30_000))}}
    status, body = server.post(GOF, big)
    assert status == 413 and body["error"]["type"] == "PayloadTooLarge"
    status, _ = server.post(GOF, read(1))  # the server is fine afterwards
    assert status == 200


def test_rejected_push_writes_nothing_anywhere(server: Server) -> None:
    events = server.repo / "data" / "events"
    parts = sorted(events.iterdir())
    # Three good rows and one bad one; "stats_small" alone would accept every row.
    df = {
        "user_id": [501, 502, 503, 504],
        "event_timestamp": [NOW.isoformat()] * 4,
        "clicks": [1, 2, 3, 4],
        "score": [0.5, 0.5, 0.5, "high"],
        "label": ["a", "b", "c", "d"],
    }
    for to in ("online", "offline", "online_and_offline"):
        status, body = server.post("/push", {"push_source_name": "stats_push", "df": df, "to": to})
        assert status == 400, body
    status, body = server.post(
        GOF,
        {
            "features": ["stats:clicks", "stats_small:clicks"],
            "entities": {"user_id": [501, 502, 503, 504]},
            "full_feature_names": True,
        },
    )
    got = features_of(body)
    assert got["stats__clicks"]["statuses"] == ["NOT_FOUND"] * 4
    assert got["stats_small__clicks"]["statuses"] == ["NOT_FOUND"] * 4
    assert sorted(events.iterdir()) == parts


def test_errors_are_counted_in_metrics(server: Server) -> None:
    server.post(GOF, {"features": ["nope:x"], "entities": {"user_id": [1]}})
    _, text = server.request("GET", "/metrics")
    assert 'banquet_server_requests_total{endpoint="/get-online-features",status="404"}' in text
