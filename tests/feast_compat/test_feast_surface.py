"""Feast 0.67's FeatureStore surface on banquet's FeatureStore (issue #16, Deliver 3): every
public method and parameter exists, in Feast's positional order, and each does what Feast's
does or raises NotSupportedError naming itself."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feast_067 import FEATURE_STORE_067, INIT_067

from banquet import Entity, FeatureStore
from banquet.errors import (
    BanquetError,
    DataSourceNotFound,
    FeatureViewNotFound,
    NotSupportedError,
    PermissionNotFound,
    ProjectNotFound,
    SavedDatasetNotFound,
    SchemaMismatch,
)
from banquet.store import PushMode

MakeRepo = Callable[..., Path]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _params(fn: Any) -> list[str]:
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def test_every_public_member_of_feast_067_exists() -> None:
    missing = [n for n in FEATURE_STORE_067 if not hasattr(FeatureStore, n)]
    assert not missing


@pytest.mark.parametrize("name", sorted(n for n, p in FEATURE_STORE_067.items() if p is not None))
def test_parameters_in_feasts_order(name: str) -> None:
    """Feast's parameters come first, in Feast's order (positional calls mean the same);
    banquet's own extras follow as keyword-only ones."""
    feast_params = list(FEATURE_STORE_067[name] or ())
    method = getattr(FeatureStore, name)
    ours = _params(method)
    assert ours[: len(feast_params)] == feast_params, (name, ours)
    extra = inspect.signature(method).parameters
    for p in ours[len(feast_params) :]:
        assert extra[p].kind is inspect.Parameter.KEYWORD_ONLY, (name, p)
    feast_async = name in {
        "close",
        "initialize",
        "get_online_features_async",
        "push_async",
        "write_to_online_store_async",
        "update_online_store",
        "openai_search",
    }
    assert inspect.iscoroutinefunction(method) == feast_async, name


def test_properties_are_properties() -> None:
    for name, params in FEATURE_STORE_067.items():
        if params is None:
            assert isinstance(inspect.getattr_static(FeatureStore, name), property), name
    assert _params(FeatureStore.__init__)[: len(INIT_067)] == list(INIT_067)


@pytest.mark.real_feast
def test_the_table_is_feasts(real_feast_python: str) -> None:
    """feast_067.py against the installed Feast itself (when one is around)."""
    probe = (
        "import inspect, json, feast\n"
        "out = {}\n"
        "for n, m in inspect.getmembers(feast.FeatureStore):\n"
        "    if n.startswith('_'): continue\n"
        "    if isinstance(m, property): out[n] = None; continue\n"
        "    ps = inspect.signature(m).parameters.values()\n"
        "    out[n] = [p.name for p in ps if p.name != 'self' and p.kind not in "
        "(p.VAR_POSITIONAL, p.VAR_KEYWORD)]\n"
        "print(json.dumps({'version': feast.__version__, 'members': out}))\n"
    )
    proc = subprocess.run(
        [real_feast_python, "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    real = json.loads(proc.stdout.splitlines()[-1])
    if real["version"] != "0.67.0":
        pytest.skip(f"the installed Feast is {real['version']}, the table is 0.67.0's")
    table = {n: None if p is None else list(p) for n, p in FEATURE_STORE_067.items()}
    assert real["members"] == table


@pytest.mark.real_feast
def test_feast_exception_names_exist_in_feast(real_feast_python: str) -> None:
    import banquet.errors as errors

    ours = [n for n, o in vars(errors).items() if isinstance(o, type) and o.__name__ != n]
    probe = "import feast.errors as e, sys; print([n for n in sys.argv[1:] if not hasattr(e, n)])"
    proc = subprocess.run(
        [real_feast_python, "-c", probe, *ours], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", "aliases that are not Feast names: " + proc.stdout


# --- behaviour ----------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_repo: MakeRepo) -> FeatureStore:
    fs = FeatureStore(repo_path=tmp_repo())
    fs.apply()
    return fs


def test_cache_flags(store: FeatureStore, tmp_repo: MakeRepo) -> None:
    other = FeatureStore(repo_path=store.repo_path)
    assert [e.name for e in store.list_entities(allow_cache=True)] == ["user"]
    other.apply([Entity(name="shop", join_keys=["shop_id"])])
    assert [e.name for e in store.list_entities(allow_cache=True)] == ["user"]
    assert [e.name for e in store.list_entities()] == ["shop", "user"]  # Feast: re-read
    assert store.get_entity("shop", allow_registry_cache=True).join_key == "shop_id"
    assert [v.name for v in store.list_feature_views(tags={"team": "growth"})] == ["user_profile"]
    assert store.list_batch_feature_views() == store.list_feature_views()
    assert store.list_stream_feature_views() == []
    assert [v.name for v in store.list_all_feature_views()] == ["user_activity", "user_profile"]
    assert [s.name for s in store.list_feature_services()] == ["model_v1"]
    assert store.get_feature_service("model_v1", allow_cache=True).name == "model_v1"
    assert store.get_data_source("profiles").name == "profiles"


def test_introspection_works(store: FeatureStore) -> None:
    """`provider` is absent, not an error, for hasattr and inspect (IDEs, pydoc)."""
    assert not hasattr(store, "provider")
    names = [n for n, _ in inspect.getmembers(store)]
    assert "get_online_features" in names and "provider" not in names


def test_lookups_of_kinds_banquet_lacks(store: FeatureStore) -> None:
    with pytest.raises(FeatureViewNotFound, match="no stream feature views"):
        store.get_stream_feature_view("x")
    with pytest.raises(FeatureViewNotFound, match="label view 'x'"):
        store.get_label_view("x")
    assert store.list_label_views() == []
    assert store.list_saved_datasets() == [] and store.list_validation_references() == []
    assert store.list_permissions() == []
    with pytest.raises(SavedDatasetNotFound):
        store.get_saved_dataset("x")
    with pytest.raises(PermissionNotFound):
        store.get_permission("x")
    assert store.mlflow is None and store.openlineage_emitter is None
    assert store.get_feature_server_endpoint() is None


def test_projects(store: FeatureStore, tmp_repo: MakeRepo) -> None:
    assert [p.name for p in store.list_projects()] == ["test_project"]
    assert store.get_project(None).name == "test_project"
    with pytest.raises(ProjectNotFound):
        store.get_project("nope")
    token = store.set_current_project("test_project")
    store.reset_current_project(token)
    with pytest.raises(NotSupportedError, match="set_current_project"):
        store.set_current_project("other")
    from dataclasses import replace

    other = FeatureStore(config=replace(store.config, project="other"))  # the same registry
    other.apply([Entity(name="shop", join_keys=["shop_id"])])
    assert [p.name for p in store.list_projects()] == ["other", "test_project"]
    store.delete_project("other")
    assert [p.name for p in store.list_projects()] == ["test_project"]
    store.delete_project("test_project")
    assert store.list_projects() == [] and store.list_feature_views() == []


def test_delete_feature_view_and_service(store: FeatureStore) -> None:
    store.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    with pytest.raises(BanquetError, match="model_v1"):  # a service still uses it
        store.delete_feature_view("user_activity")
    store.delete_feature_service("model_v1")
    store.delete_feature_view("user_activity")
    assert [v.name for v in store.list_feature_views()] == ["user_profile"]
    assert store.list_feature_services() == []
    with pytest.raises(FeatureViewNotFound):
        store.delete_feature_view("user_activity")


def test_write_to_offline_store(store: FeatureStore) -> None:
    rows = pd.DataFrame(
        {
            "event_timestamp": [T0 + timedelta(days=1)],
            "clicks": [99],
            "user_id": [7],
            "score": [0.125],
        }
    )
    store.write_to_offline_store("user_activity", rows)  # reordered to the source's columns
    entity = pd.DataFrame({"user_id": [7], "event_timestamp": [T0 + timedelta(days=2)]})
    got = store.get_historical_features(entity, ["user_activity:clicks"]).to_df()
    assert got["clicks"].tolist() == [99]
    with pytest.raises(SchemaMismatch, match=r"missing \['score'\], unexpected \['extra'\]"):
        store.write_to_offline_store("user_activity", rows.drop(columns="score").assign(extra=1))
    with pytest.raises(SchemaMismatch, match="reorder_columns=True"):
        store.write_to_offline_store("user_activity", rows, reorder_columns=False)


def test_feast_positional_order_of_push_and_writes(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(
        {
            "features.py": """
            from banquet import Entity, FeatureView, Field, FileSource, PushSource
            from banquet.types import Int64

            user = Entity(name="user", join_keys=["user_id"])
            batch = FileSource(name="b", path="data/pushed", timestamp_field="ts")
            pushed = PushSource(name="pushed", batch_source=batch)
            v = FeatureView(name="v", entities=[user], source=pushed,
                            schema=[Field(name="x", dtype=Int64), Field(name="user_id", dtype=Int64)])
            """
        }
    )
    fs = FeatureStore(repo_path=repo)
    fs.apply()
    frame = pd.DataFrame({"user_id": [1], "ts": [T0], "x": [5]})
    fs.push("pushed", frame, True, PushMode.ONLINE_AND_OFFLINE)  # Feast's positions
    fs.push("pushed", frame.assign(x=6), PushMode.ONLINE)  # banquet's earlier third position
    asyncio.run(fs.push_async("pushed", frame.assign(x=7, ts=T0 + timedelta(seconds=1))))
    online = fs.get_online_features(["v:x"], [{"user_id": 1}]).to_dict()
    assert online["x"] == [7]
    fs.write_to_online_store("v", inputs={"user_id": [2], "ts": [T0], "x": [8]})
    asyncio.run(
        fs.write_to_online_store_async("v", pd.DataFrame({"user_id": [3], "ts": [T0], "x": [9]}))
    )
    got = asyncio.run(fs.get_online_features_async(["v:x"], [{"user_id": i} for i in (1, 2, 3)]))
    assert got.to_dict()["x"] == [7, 8, 9]
    asyncio.run(fs.initialize())
    asyncio.run(fs.close())
    assert fs.get_online_features(["v:x"], [{"user_id": 2}]).to_dict()["x"] == [8]
    with pytest.raises(DataSourceNotFound):
        fs.push("nope", frame)

    # allow_registry_cache=False: a view another process just fed from the source gets rows
    from banquet import FeatureView, Field
    from banquet.types import Int64

    other = FeatureStore(repo_path=repo)
    w = FeatureView(
        name="w",
        entities=[other.get_entity("user")],
        source=other.get_data_source("pushed"),
        schema=[Field(name="x", dtype=Int64), Field(name="user_id", dtype=Int64)],
    )
    other.apply([w])
    fs.push("pushed", frame.assign(ts=T0 + timedelta(seconds=2)), False)
    assert fs.get_online_features(["w:x"], [{"user_id": 1}]).to_dict()["x"] == [5]


NOT_SUPPORTED: dict[str, tuple[Any, ...]] = {
    "create_saved_dataset": (None, "n", None),
    "create_dataset_from_retrieval": ("n", None, [], None),
    "enable_feature_view": ("v",),
    "disable_feature_view": ("v",),
    "set_feature_view_state": ("v", None),
    "list_feature_view_versions": ("v",),
    "precompute_feature_service": (),
    "retrieve_online_documents": ([0.1], 3, ["v:x"]),
    "retrieve_online_documents_v2": (["v:x"], 3),
    "serve_ui": ("127.0.0.1", 1),
    "serve_registry": (1,),
    "serve_offline": ("127.0.0.1", 1),
    "serve_transformations": (1,),
    "write_logged_features": (None, None),
    "validate_logged_features": (None, None, None, None),
}


@pytest.mark.parametrize("name", sorted(NOT_SUPPORTED))
def test_absent_services_raise_not_supported_naming_the_method(
    store: FeatureStore, name: str
) -> None:
    with pytest.raises(NotSupportedError, match=f"FeatureStore.{name}: ") as info:
        getattr(store, name)(*NOT_SUPPORTED[name])
    assert isinstance(info.value, NotImplementedError)


def test_unsupported_arguments_raise_naming_them(store: FeatureStore) -> None:
    entity = pd.DataFrame({"user_id": [1], "event_timestamp": [T0]})
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: store.get_historical_features(features=["user_profile:age"]), "entity_df"),
        (
            lambda: store.get_historical_features(
                entity, ["user_profile:age"], filter_by_created_timestamp=True
            ),
            "filter_by_created_timestamp",
        ),
        (
            lambda: store.get_online_features(
                ["user_profile:age"], [{"user_id": 1}], include_feature_view_version_metadata=True
            ),
            "include_feature_view_version_metadata",
        ),
        (lambda: store.materialize(T0, T0, version="v2"), "version='v2'"),
        (lambda: store.materialize(T0, T0, disable_event_timestamp=True), "disable_event"),
        (lambda: store.serve("127.0.0.1", 1, tls_key_path="k"), "TLS"),
        (lambda: asyncio.run(store.update_online_store("v", None, {})), "update expressions"),
        (lambda: asyncio.run(store.openai_search("vs", "q")), "vector search"),
        (lambda: store.provider, "provider layer"),
    ]
    for call, words in cases:
        with pytest.raises(NotSupportedError, match=words):
            call()
    # accepted and without effect, as in Feast without a remote server
    store.materialize(T0, T0 + timedelta(days=1), full_feature_names=True, force=True)
    store.materialize_incremental(T0 + timedelta(days=2), run_async=True)
    store.apply(skip_feature_view_validation=True, no_promote=True)
    assert store.plan(skip_feature_view_validation=True).empty


def test_serve_runs_banquets_server(store: FeatureStore) -> None:
    """`FeatureStore.serve(host, port)` (blocking, as Feast's) in a child process."""
    import socket
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (
        "import sys; from banquet import FeatureStore; "
        "FeatureStore(repo_path=sys.argv[1]).serve('127.0.0.1', int(sys.argv[2]), workers=1)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(store.repo_path), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as server:
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    body = json.dumps(
                        {"features": ["user_profile:age"], "entities": {"user_id": [1]}}
                    ).encode()
                    req = urllib.request.Request(
                        f"http://127.0.0.1:{port}/get-online-features", data=body
                    )
                    with urllib.request.urlopen(req, timeout=2) as r:
                        assert r.status == 200
                        assert json.loads(r.read())["metadata"]["feature_names"][-1] == "age"
                        break
                except OSError:
                    assert server.poll() is None, "the server exited"
                    assert time.monotonic() < deadline, "no answer within 60 s"
                    time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(timeout=30)
