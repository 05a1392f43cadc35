"""On-demand feature views through the server: request fields travel in ``entities``, the
outputs come back in request order, a missing request field is a 400 naming it."""

from __future__ import annotations

from typing import Any

import pytest
from server_support import Server, features_of, make_repo

ON_DEMAND = """

from banquet import RequestSource, on_demand_feature_view

txn = RequestSource(name="txn", schema=[Field(name="amount", dtype=Float64)])


@on_demand_feature_view(
    sources=[stats, txn], schema=[Field(name="amount_x_score", dtype=Float64)], mode="python"
)
def amount_x_score(inputs: dict) -> dict:
    return {
        "amount_x_score": [
            None if s is None else a * s for a, s in zip(inputs["amount"], inputs["score"])
        ]
    }


scored = FeatureService(name="scored", features=[stats[["clicks"]], amount_x_score])
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    repo = make_repo(
        tmp_path_factory.mktemp("on_demand") / "repo", "srv_on_demand", extra_features=ON_DEMAND
    )
    return start_server(repo)


def test_on_demand_features_with_request_fields(server: Server) -> None:
    status, body = server.post(
        "/get-online-features",
        {
            "features": ["amount_x_score:amount_x_score", "stats:score"],
            "entities": {"user_id": [1, 9], "amount": [2.0, 3.0]},
        },
    )
    assert status == 200, body
    # as Feast's server: the join key and the features, not the request field
    assert body["metadata"]["feature_names"] == ["user_id", "amount_x_score", "score"]
    got = features_of(body)
    assert got["amount_x_score"]["values"] == [1.0, None]
    assert got["score"]["values"] == [0.5, None]
    assert got["score"]["statuses"] == ["PRESENT", "NOT_FOUND"]


def test_on_demand_in_a_feature_service(server: Server) -> None:
    status, body = server.post(
        "/get-online-features",
        {
            "feature_service": "scored",
            "entities": {"user_id": [3], "amount": [10]},
            "full_feature_names": True,
        },
    )
    assert status == 200, body
    got = features_of(body)
    assert got["amount_x_score__amount_x_score"]["values"] == [25.0]
    assert got["stats__clicks"]["values"] == [30]


def test_a_missing_request_field_is_a_400_naming_it(server: Server) -> None:
    status, body = server.post(
        "/get-online-features",
        {"features": ["amount_x_score:amount_x_score"], "entities": {"user_id": [1]}},
    )
    assert status == 400, body
    assert body["error"]["type"] == "RequestDataNotFound"
    assert "amount" in body["error"]["message"]
