"""Feast 0.67's definitions and yaml keys that banquet accepts (issue #16, Deliver 2): the
Map / Json / Struct types end to end, Project, LabelView / ConflictPolicy, feature logging
settings, FeatureView(enable_validation=, version=) with 'view@vN:feature', and the yaml's
auth / batch_engine / coerce_tz_aware / offline_store dask|duckdb / key version 2."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from feast_template import write_template

import banquet.feature_logging
from banquet import FeatureStore
from banquet.config import RepoConfig
from banquet.errors import ConfigError, DefinitionError, NotSupportedError, SchemaMismatch
from banquet.feature_logging import FeatureLoggingIgnored, FileLoggingDestination, LoggingConfig
from banquet.labeling import ConflictPolicy, LabelView
from banquet.types import Json, Map, String, Struct, from_name


@pytest.fixture
def template_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeatureStore:
    monkeypatch.setattr(banquet.feature_logging, "_warned", False)
    store = FeatureStore(repo_path=write_template(tmp_path))
    with pytest.warns(FeatureLoggingIgnored, match="driver_activity_v1"):
        store.apply()
    return store


def test_document_types_round_trip_in_the_registry() -> None:
    profile = Struct({"name": String, "age": String})
    assert from_name(profile.name) == profile and repr(profile).startswith("Struct(")
    assert from_name("map") is Map and from_name("json") is Json
    with pytest.raises(DefinitionError, match="Struct"):
        Struct({})


def test_documents_online_and_historical(template_store: FeatureStore) -> None:
    store = template_store
    now = datetime.now(timezone.utc)
    store.materialize(now - timedelta(days=2), now)
    got = store.get_online_features(
        features=[
            "driver_hourly_stats:driver_metadata",
            "driver_hourly_stats:driver_config",
            "driver_hourly_stats:driver_profile",
        ],
        entity_rows=[{"driver_id": 1001}, {"driver_id": 9}],
    ).to_dict()
    meta, config, profile = got["driver_metadata"], got["driver_config"], got["driver_profile"]
    assert list(meta[0]) == sorted(meta[0]) and set(meta[0]) == {"rating", "vehicle_type"}
    assert isinstance(config[0], dict) and "preferred_zones" in config[0]
    assert list(profile[0]) == ["name", "age"] and profile[0]["name"] == "driver_1001"
    assert meta[1] is None and config[1] is None and profile[1] is None
    # the stored values are the source's latest row for the driver
    src = pd.read_parquet(store.repo_path / "data" / "driver_stats.parquet")
    last = src[src.driver_id == 1001].sort_values("event_timestamp").iloc[-1]
    assert json.loads(last.driver_config) == config[0]
    assert dict(last.driver_profile) == profile[0]
    # historical output: the source column as it is (struct -> dicts, JSON text)
    hist = store.get_historical_features(
        entity_df=pd.DataFrame({"driver_id": [1001], "event_timestamp": [now]}),
        features=["driver_hourly_stats:driver_profile", "driver_hourly_stats:driver_config"],
    ).to_df()
    assert hist.driver_profile[0] == profile[0]
    assert json.loads(hist.driver_config[0]) == config[0]


def test_pushed_documents_are_checked(template_store: FeatureStore) -> None:
    row = {
        "driver_id": [1001],
        "event_timestamp": [datetime.now(timezone.utc)],
        "conv_rate": [1.0],
        "acc_rate": [1.0],
        "avg_daily_trips": [1],
        "driver_metadata": [{"vehicle_type": "van"}],
        "driver_config": ["not json"],
        "driver_profile": [{"name": "x", "age": "1"}],
    }
    with pytest.raises(SchemaMismatch, match="driver_config.*not valid JSON"):
        template_store.push("driver_stats_push_source", pd.DataFrame(row))
    row["driver_config"] = ['{"a": 1}']
    row["driver_profile"] = [{"name": "x", "height": "1"}]
    with pytest.raises(SchemaMismatch, match="height"):
        template_store.push("driver_stats_push_source", pd.DataFrame(row))
    row["driver_profile"] = [{"name": "x", "age": "1"}]
    template_store.push("driver_stats_push_source", pd.DataFrame(row))
    got = template_store.get_online_features(
        features=["driver_hourly_stats_fresh:driver_config"], entity_rows=[{"driver_id": 1001}]
    ).to_dict()
    assert got["driver_config"] == [{"a": 1}]


def test_label_view_is_a_view_kept_in_the_registry(template_store: FeatureStore) -> None:
    labels = template_store.get_feature_view("driver_quality_labels")
    assert isinstance(labels, LabelView)
    assert labels.labeler_field == "labeler"
    assert labels.conflict_policy is ConflictPolicy.LAST_WRITE_WINS
    template_store.push(
        "driver_quality_labels_push",
        pd.DataFrame(
            {
                "driver_id": [1001],
                "event_timestamp": [datetime.now(timezone.utc)],
                "is_reliable": [1],
                "quality_score": [0.5],
                "reviewer_notes": ["fine"],
                "labeler": ["ann"],
            }
        ),
    )
    got = template_store.get_online_features(
        features=["driver_quality_labels:is_reliable", "driver_quality_labels:labeler"],
        entity_rows=[{"driver_id": 1001}],
    ).to_dict()
    assert got["is_reliable"] == [1] and got["labeler"] == ["ann"]


def test_label_view_refuses_what_it_cannot_do(template_store: FeatureStore) -> None:
    fv = template_store.get_feature_view("driver_quality_labels")
    kwargs = {"name": "l", "source": fv.source, "entities": fv.entities, "schema": fv.schema}
    with pytest.raises(NotSupportedError, match="MAJORITY_VOTE"):
        LabelView(**kwargs, conflict_policy=ConflictPolicy.MAJORITY_VOTE)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="labeler_field 'who'"):
        LabelView(**kwargs, labeler_field="who")  # type: ignore[arg-type]


def test_logging_config_is_kept_and_warns_once(
    template_store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = template_store.get_feature_service("driver_activity_v1")
    assert service.logging_config == LoggingConfig(FileLoggingDestination(path="data"))
    with pytest.raises(DefinitionError, match="sample_rate"):
        LoggingConfig(FileLoggingDestination(path="data"), sample_rate=2)


def test_versions(template_store: FeatureStore) -> None:
    fv = template_store.get_feature_view("driver_hourly_stats")
    assert fv.version == "latest" and fv.enable_validation
    got = template_store.get_online_features(
        features=["driver_hourly_stats@v0:conv_rate"], entity_rows=[{"driver_id": 1001}]
    ).to_dict()
    assert "conv_rate" in got
    with pytest.raises(NotSupportedError, match="at version v0; v3 is not kept"):
        template_store.get_online_features(
            features=["driver_hourly_stats@v3:conv_rate"], entity_rows=[{"driver_id": 1001}]
        )
    with pytest.raises(NotSupportedError, match="only the latest"):
        type(fv)(name="x", source=fv.source, entities=fv.entities, version="v2")
    with pytest.raises(DefinitionError, match="'latest', 'vN'"):
        type(fv)(name="x", source=fv.source, entities=fv.entities, version="two")


def test_feast_yaml_keys() -> None:
    cfg = RepoConfig.from_dict(
        {
            "project": "p",
            "auth": {"type": "no_auth"},
            "offline_store": {"type": "duckdb"},
            "batch_engine": "local",
            "coerce_tz_aware": True,
            "entity_key_serialization_version": 2,
        }
    )
    assert cfg.offline_store.type == "file" and cfg.batch_engine.type == "local"
    assert RepoConfig.from_dict({"project": "p", "offline_store": "dask"}).offline_store.type == (
        "file"
    )
    with pytest.raises(ConfigError, match="feature_server: {auth: {type: token}}"):
        RepoConfig.from_dict({"project": "p", "auth": {"type": "oidc"}})
    with pytest.raises(ConfigError, match="batch_engine.type"):
        RepoConfig.from_dict({"project": "p", "batch_engine": {"type": "spark.engine"}})
