"""A stored value that does not decode under its view's current schema reaches HTTP clients as
a typed ``CorruptDataError`` naming the view and the fix (issue #12, finding 8), not as a bare
"internal server error"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from server_support import make_repo

from banquet import FeatureStore, _core
from banquet.online.base import rows_batch


def _corrupt_user(repo: Path, uid: int) -> None:
    store = FeatureStore(repo_path=repo)
    view = store.get_feature_view("profile")
    key = _core.serialize_entity_keys(["user_id"], [pa.array([uid])])[0].as_py()
    store.online_store.write(
        store.project,
        view.storage_name,
        rows_batch([key], [0], [0], [b"\x01not a blob"]),
        overwrite=True,
    )
    store.online_store.close()


def test_an_undecodable_value_is_a_typed_error_naming_the_view(
    tmp_path: Path, start_server: Any
) -> None:
    repo = make_repo(tmp_path / "repo", "srv_corrupt")
    server = start_server(repo)
    _corrupt_user(repo, 1)
    status, body = server.post(
        "/get-online-features",
        {"features": ["profile:age"], "entities": {"user_id": [1, 2]}},
    )
    assert status == 500, body
    error = body["error"]
    assert error["type"] == "CorruptDataError", error
    assert "feature view 'profile'" in error["message"], error
    assert "re-materialize" in error["message"], error
    # the view's other keys and other views are unaffected
    status, body = server.post(
        "/get-online-features", {"features": ["profile:age"], "entities": {"user_id": [2]}}
    )
    assert status == 200, body
