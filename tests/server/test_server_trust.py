"""The feature server runs a stored on-demand function only when it trusts it (issue #12,
finding 2): code prepended to the stored function in the registry must not run in
``banquet serve``; the refusal is a typed error body, and the server stays healthy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_support import Server, make_repo

from banquet import FeatureStore
from banquet.trust import ENV_VAR, function_hash

ON_DEMAND = """

from banquet import RequestSource, on_demand_feature_view

txn = RequestSource(name="txn", schema=[Field(name="amount", dtype=Float64)])


@on_demand_feature_view(sources=[txn], schema=[Field(name="doubled", dtype=Float64)], mode="python")
def doubled(inputs: dict) -> dict:
    return {"doubled": [a * 2 for a in inputs["amount"]]}
"""
REQUEST = {"features": ["doubled:doubled"], "entities": {"user_id": [1], "amount": [1.5]}}


def _tamper(repo: Path, marker: Path) -> str:
    fs = FeatureStore(repo_path=repo)
    out: dict[str, str] = {}

    def change(state: dict[str, Any]) -> bool:
        rec = state["on_demand_feature_views"]["doubled"]["udf"]
        prelude = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n"
        rec["source"] = prelude + rec["source"]
        out["hash"] = function_hash(rec["name"], rec["source"], rec.get("globals"))
        return True

    fs.registry.update(fs.project, change)
    return out["hash"]


def _registry_only(repo: Path, folder: Path) -> Path:
    """A folder holding only a feature_store.yaml that reads ``repo``'s registry and store."""
    folder.mkdir()
    (folder / "feature_store.yaml").write_text(
        f"project: srv_trust\nregistry: {repo}/data/registry.db\nonline_store:\n  type: sqlite\n"
        f"  path: {repo}/data/online_store.db\noffline_store:\n  type: file\n"
    )
    return folder


def test_server_in_the_repo_runs_the_applied_function(
    tmp_path_factory: pytest.TempPathFactory, start_server: Any
) -> None:
    repo = make_repo(
        tmp_path_factory.mktemp("trust_ok") / "repo", "srv_trust", extra_features=ON_DEMAND
    )
    status, body = start_server(repo).post("/get-online-features", REQUEST)
    assert status == 200, body
    assert body["results"][-1]["values"] == [3.0]


def test_server_refuses_a_tampered_function_and_stays_healthy(
    tmp_path_factory: pytest.TempPathFactory, start_server: Any
) -> None:
    base = tmp_path_factory.mktemp("trust_tampered")
    repo = make_repo(base / "repo", "srv_trust", extra_features=ON_DEMAND)
    marker = base / "marker"
    bad = _tamper(repo, marker)

    # Started in the repo: the repo defines another function for the view -> refused.
    in_repo: Server = start_server(repo)
    status, body = in_repo.post("/get-online-features", REQUEST)
    assert status == 500, body
    assert body["error"]["type"] == "UntrustedFunction"
    assert "'doubled'" in body["error"]["message"] and bad in body["error"]["message"]
    assert in_repo.request("GET", "/health")[0] == 200
    # A request without the view is served as usual.
    status, body = in_repo.post(
        "/get-online-features", {"features": ["stats:clicks"], "entities": {"user_id": [1]}}
    )
    assert status == 200, body

    # Started from a folder with only the config: nothing to trust it by -> refused.
    reader = _registry_only(repo, base / "reader")
    status, body = start_server(reader).post("/get-online-features", REQUEST)
    assert status == 500 and body["error"]["type"] == "UntrustedFunction", body
    assert not marker.exists()

    # Pinned by hash in the environment: it runs (and so does the prepended code).
    pinned: Server = start_server(reader, env={ENV_VAR: bad})
    status, body = pinned.post("/get-online-features", REQUEST)
    assert status == 200, body
    assert body["results"][-1]["values"] == [3.0]
    assert marker.read_text() == "ran"
