"""This suite's own copy of the repo `feast init` makes (Feast 0.67's local template),
written for banquet from the template's structure, not its text: the same driver statistics
source, entity, feature views (batch and push-fed), on-demand view over a request source,
feature services, push source, `feature_store.yaml`, data shape and workflow script, all
through the `feast` import name and command. Like Feast 0.67's it also holds a `Project`,
`Map`/`Json`/`Struct` features, `enable_validation=`/`version=`, a feature service with a
`LoggingConfig`, a `LabelView` over a push source (`ConflictPolicy`) and the yaml's `auth:`.
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

YAML = """\
project: {project}
# a file registry next to the definitions
registry: data/registry.db
provider: local
online_store:
    type: sqlite
    path: data/online_store.db
entity_key_serialization_version: 3
# no authentication (Feast's default)
auth:
    type: no_auth
"""

DEFINITIONS = '''\
"""Driver statistics: the definitions of the example repo."""

from datetime import timedelta

import pandas as pd

from feast import (
    ConflictPolicy,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    LabelView,
    Project,
    PushSource,
    RequestSource,
)
from feast.feature_logging import LoggingConfig
from feast.infra.offline_stores.file_source import FileLoggingDestination
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Float64, Int64, Json, Map, String, Struct

project = Project(name="{project}", description="driver statistics")

driver = Entity(name="driver", join_keys=["driver_id"])

driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="data/driver_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

STATS = [
    Field(name="conv_rate", dtype=Float32),
    Field(name="acc_rate", dtype=Float32),
    Field(name="avg_daily_trips", dtype=Int64, description="trips a day, on average"),
    Field(name="driver_metadata", dtype=Map, description="key-value pairs"),
    Field(name="driver_config", dtype=Json, description="a JSON document"),
    Field(name="driver_profile", dtype=Struct({{"name": String, "age": String}})),
]

driver_stats_fv = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=STATS,
    online=True,
    source=driver_stats_source,
    tags={{"team": "driver_performance"}},
    enable_validation=True,
    version="latest",
)

input_request = RequestSource(
    name="vals_to_add",
    schema=[Field(name="val_to_add", dtype=Int64), Field(name="val_to_add_2", dtype=Int64)],
)


@on_demand_feature_view(
    sources=[driver_stats_fv, input_request],
    schema=[
        Field(name="conv_rate_plus_val1", dtype=Float64),
        Field(name="conv_rate_plus_val2", dtype=Float64),
    ],
)
def transformed_conv_rate(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_rate_plus_val1"] = inputs["conv_rate"] + inputs["val_to_add"]
    out["conv_rate_plus_val2"] = inputs["conv_rate"] + inputs["val_to_add_2"]
    return out


driver_activity_v1 = FeatureService(
    name="driver_activity_v1",
    features=[driver_stats_fv[["conv_rate"]], transformed_conv_rate],
    logging_config=LoggingConfig(destination=FileLoggingDestination(path="data")),
)
driver_activity_v2 = FeatureService(
    name="driver_activity_v2", features=[driver_stats_fv, transformed_conv_rate]
)

driver_stats_push_source = PushSource(
    name="driver_stats_push_source", batch_source=driver_stats_source
)

driver_stats_fresh_fv = FeatureView(
    name="driver_hourly_stats_fresh",
    entities=[driver],
    ttl=timedelta(days=1),
    schema=STATS,
    online=True,
    source=driver_stats_push_source,
    tags={{"team": "driver_performance"}},
    version="latest",
)


@on_demand_feature_view(
    sources=[driver_stats_fresh_fv, input_request],
    schema=[
        Field(name="conv_rate_plus_val1", dtype=Float64),
        Field(name="conv_rate_plus_val2", dtype=Float64),
    ],
)
def transformed_conv_rate_fresh(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_rate_plus_val1"] = inputs["conv_rate"] + inputs["val_to_add"]
    out["conv_rate_plus_val2"] = inputs["conv_rate"] + inputs["val_to_add_2"]
    return out


driver_activity_v3 = FeatureService(
    name="driver_activity_v3", features=[driver_stats_fresh_fv, transformed_conv_rate_fresh]
)

# human labels, pushed as they arrive; the newest label wins
driver_quality_labels = LabelView(
    name="driver_quality_labels",
    entities=[driver],
    schema=[
        Field(name="is_reliable", dtype=Int64),
        Field(name="quality_score", dtype=Float32),
        Field(name="reviewer_notes", dtype=String),
        Field(name="labeler", dtype=String),
    ],
    source=PushSource(
        name="driver_quality_labels_push",
        batch_source=FileSource(
            name="driver_quality_labels_batch",
            path="data/driver_quality_labels.parquet",
            timestamp_field="event_timestamp",
        ),
    ),
    labeler_field="labeler",
    conflict_policy=ConflictPolicy.LAST_WRITE_WINS,
    description="quality labels per driver",
    tags={{"feast.io/field-role:is_reliable": "label"}},
)
'''

WORKFLOW = '''\
"""The example's workflow: apply, train, materialize, serve, push, serve again, tear down."""

import json
import subprocess
from datetime import datetime

import pandas as pd

from feast import FeatureStore
from feast.data_source import PushMode


def main():
    store = FeatureStore(repo_path=".")
    print("--- feast apply ---")
    subprocess.run(["feast", "apply"], check=True)

    print("--- historical features (training) ---")
    historical(store, batch_scoring=False)
    print("--- historical features (batch scoring) ---")
    historical(store, batch_scoring=True)

    print("--- materialize ---")
    store.materialize_incremental(end_date=datetime.now())

    print("--- online features ---")
    online(store)
    print("--- online features via feature service ---")
    online(store, store.get_feature_service("driver_activity_v1"))
    print("--- online features via the push-fed service ---")
    online(store, store.get_feature_service("driver_activity_v3"))

    print("--- push ---")
    event = pd.DataFrame.from_dict(
        {
            "driver_id": [1001],
            "event_timestamp": [datetime.now()],
            "created": [datetime.now()],
            "conv_rate": [1.0],
            "acc_rate": [1.0],
            "avg_daily_trips": [1000],
            "driver_metadata": [{"vehicle_type": "truck", "rating": "5.0"}],
            "driver_config": [json.dumps({"max_distance_km": 500, "preferred_zones": ["north"]})],
            "driver_profile": [{"name": "driver_1001_updated", "age": "30"}],
        }
    )
    store.push("driver_stats_push_source", event, to=PushMode.ONLINE_AND_OFFLINE)
    print("--- online features after the push ---")
    online(store, store.get_feature_service("driver_activity_v3"))

    print("--- feast teardown ---")
    subprocess.run(["feast", "teardown"], check=True)


def historical(store, batch_scoring):
    entity_df = pd.DataFrame.from_dict(
        {
            "driver_id": [1001, 1002, 1003],
            "event_timestamp": [
                datetime(2021, 4, 12, 10, 59, 42),
                datetime(2021, 4, 12, 8, 12, 10),
                datetime(2021, 4, 12, 16, 40, 26),
            ],
            "label_driver_reported_satisfaction": [1, 5, 3],
            "val_to_add": [1, 2, 3],
            "val_to_add_2": [10, 20, 30],
        }
    )
    if batch_scoring:
        entity_df["event_timestamp"] = pd.to_datetime("now", utc=True)
    training_df = store.get_historical_features(
        entity_df=entity_df,
        features=[
            "driver_hourly_stats:conv_rate",
            "driver_hourly_stats:acc_rate",
            "driver_hourly_stats:avg_daily_trips",
            "transformed_conv_rate:conv_rate_plus_val1",
            "transformed_conv_rate:conv_rate_plus_val2",
        ],
    ).to_df()
    print(training_df.head())


def online(store, features=None):
    rows = [
        {"driver_id": 1001, "val_to_add": 1000, "val_to_add_2": 2000},
        {"driver_id": 1002, "val_to_add": 1001, "val_to_add_2": 2002},
    ]
    if features is None:
        features = [
            "driver_hourly_stats:acc_rate",
            "driver_hourly_stats:driver_metadata",
            "driver_hourly_stats:driver_config",
            "driver_hourly_stats:driver_profile",
            "transformed_conv_rate:conv_rate_plus_val1",
            "transformed_conv_rate:conv_rate_plus_val2",
        ]
    result = store.get_online_features(features=features, entity_rows=rows).to_dict()
    for key, value in sorted(result.items()):
        print(key, " : ", value)


if __name__ == "__main__":
    main()
'''


def write_template(parent: Path, project: str = "my_project") -> Path:
    """`feast init`'s layout under ``parent/project``; returns the feature_repo folder."""
    import numpy as np
    import pandas as pd

    repo = parent / project / "feature_repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(YAML.format(project=project))
    (repo / "feature_definitions.py").write_text(DEFINITIONS.format(project=project))
    (repo / "test_workflow.py").write_text(textwrap.dedent(WORKFLOW))
    (repo / "__init__.py").write_text("")
    # 15 days of hourly rows per driver up to the last whole hour, as the template's data
    end = datetime.now().replace(microsecond=0, second=0, minute=0)
    hours = pd.date_range(end - timedelta(days=15), end, freq="h", tz="UTC")
    drivers = [1001, 1002, 1003, 1004, 1005]
    rng = np.random.default_rng(16)
    n = len(hours) * len(drivers)
    frame = pd.DataFrame(
        {
            "event_timestamp": np.tile(hours, len(drivers)),
            "driver_id": np.repeat(drivers, len(hours)).astype("int64"),
            "conv_rate": rng.random(n).astype("float32"),
            "acc_rate": rng.random(n).astype("float32"),
            "avg_daily_trips": rng.integers(0, 1000, n).astype("int64"),
        }
    )
    frame["created"] = pd.Timestamp(end, tz="UTC")
    vehicles, zones = ["sedan", "suv", "truck"], ["north", "south", "east", "west"]
    frame["driver_metadata"] = [
        {"vehicle_type": vehicles[i % 3], "rating": f"{3 + (i % 20) / 10:.1f}"} for i in range(n)
    ]
    frame["driver_config"] = [
        json.dumps({"max_distance_km": 10 + i % 190, "preferred_zones": zones[i % 4 :][:2]})
        for i in range(n)
    ]
    frame["driver_profile"] = [
        {"name": f"driver_{d}", "age": str(20 + i % 40)} for i, d in enumerate(frame["driver_id"])
    ]
    frame.to_parquet(repo / "data" / "driver_stats.parquet")
    # the label view's source: no labels yet (as feast init writes it)
    pd.DataFrame(
        {
            "driver_id": pd.Series([], dtype="int64"),
            "is_reliable": pd.Series([], dtype="int64"),
            "quality_score": pd.Series([], dtype="float32"),
            "reviewer_notes": pd.Series([], dtype="object"),
            "labeler": pd.Series([], dtype="object"),
            "event_timestamp": pd.Series([], dtype="datetime64[ns]"),
        }
    ).to_parquet(repo / "data" / "driver_quality_labels.parquet")
    return repo
