"""Property-based fuzz of request bodies: whatever a client sends, the server answers with
a status below 500, and every error carries the ``{"error": {"type", "message"}}`` body."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_support import Server, make_repo

POSTS = ["/get-online-features", "/push", "/write-to-online-store", "/materialize",
         "/materialize-incremental"]  # fmt: skip
REFS = ["stats:clicks", "stats:score", "stats:label", "stats:seen", "stats:blob", "stats:tags",
        "stats_small:clicks", "profile:age", "stats", "nope:x", "stats:", ":x", "a:b:c", ""]  # fmt: skip
COLUMNS = ["user_id", "event_timestamp", "created", "clicks", "score", "label", "seen", "blob",
           "tags", "age", "x", ""]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01", "aGk=", "1e400", "NaN", "-0"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def frames(draw: st.DrawFn) -> dict[str, Any]:
    """Column dicts: mostly known names, equal or ragged lengths, any JSON cell values."""
    n = draw(st.integers(0, 3))
    names = draw(st.lists(st.sampled_from(COLUMNS), max_size=8, unique=True))
    out: dict[str, Any] = {}
    for name in names:
        ragged = draw(st.integers(0, 10)) == 0
        length = draw(st.integers(0, 4)) if ragged else n
        out[name] = draw(st.lists(json_values, min_size=length, max_size=length))
    if draw(st.integers(0, 10)) == 0:
        out[draw(st.sampled_from(COLUMNS))] = draw(json_values)  # not a list at all
    return out


near_valid = st.fixed_dictionaries(
    {},
    optional={
        "features": st.lists(st.sampled_from(REFS), max_size=4) | json_values,
        "feature_service": st.sampled_from(["model", "nope", ""]) | json_values,
        "entities": frames() | json_values,
        "full_feature_names": st.booleans() | json_values,
        "push_source_name": st.sampled_from(["stats_push", "profiles", "nope"]) | json_values,
        "feature_view_name": st.sampled_from(["stats", "stats_small", "profile", "nope"])
        | json_values,
        "df": frames() | json_values,
        "to": st.sampled_from(["online", "offline", "online_and_offline", "x"]) | json_values,
        "start_ts": st.sampled_from(["2024-01-01", "2024-01-02T00:00:00Z", "x", "99999-01-01"])
        | json_values,
        "end_ts": st.sampled_from(["2024-01-01", "2024-01-02T00:00:00+05:00", "", "0001-01-01"])
        | json_values,
        "feature_views": st.lists(st.sampled_from(["stats", "profile", "nope"]), max_size=2)
        | json_values,
    },
)
bodies = (
    near_valid.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
    | st.text(max_size=64).map(str.encode)
)
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    return start_server(make_repo(tmp_path_factory.mktemp("fuzz") / "repo", "srv_fuzz"))


def check(server: Server, path: str, body: bytes) -> None:
    status, answer = server.request("POST", path, raw=body)
    assert status < 500, (path, body[:300], answer, server.output()[-1500:])
    if status >= 400:
        assert isinstance(answer, dict) and set(answer) == {"error"}, answer
        assert answer["error"]["type"] and answer["error"]["message"]


@pytest.mark.parametrize("path", POSTS)
@FUZZ
@given(body=bodies)
def test_no_request_body_gets_a_5xx(server: Server, path: str, body: bytes) -> None:
    check(server, path, body)


@FUZZ
@given(
    features=st.lists(st.sampled_from(REFS[:8]), min_size=1, max_size=4),
    keys=st.lists(scalars, max_size=5),
    full=st.booleans(),
)
def test_get_online_features_with_any_key_values(
    server: Server, features: list[str], keys: list[Any], full: bool
) -> None:
    body = {"features": features, "entities": {"user_id": keys}, "full_feature_names": full}
    check(server, "/get-online-features", json.dumps(body).encode())
