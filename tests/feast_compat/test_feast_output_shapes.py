"""Feast's output shapes by default (issue #16, Deliver 4), pinned on a small repo written
through the `feast` import name: online ``to_dict()`` / HTTP carry the join keys and the
features (no request fields, no other entity-row keys); ``include_event_timestamps`` adds
``name__ts`` after each column in whole seconds (0 where there is none); ``to_df()`` is
``pandas.DataFrame(to_dict())`` (a Float32 feature float64, list cells Python lists);
historical output timestamps are UTC-aware. banquet's own guarantees stay: one row per entity
row, in input order. With a real Feast installed (marker ``real_feast``) the same script's
output is compared with Feast 0.67's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

NOW = datetime(2026, 12, 1, 12, 0, 0)  # naive: the data is written as UTC

FEATURES_PY = """
from datetime import timedelta
import pandas as pd
from feast import Entity, FeatureView, Field, FileSource, RequestSource
from feast.data_format import ParquetFormat
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
customer = Entity(name="customer", join_keys=["customer_id"])  # no view requested uses it
src = FileSource(
    path="data/stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    file_format=ParquetFormat(),
)
stats = FeatureView(
    name="stats",
    entities=[driver],
    ttl=timedelta(days=3650),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float64),
        Field(name="trips", dtype=Int64),
        Field(name="small", dtype=Int32),
        Field(name="name", dtype=String),
        Field(name="flag", dtype=Bool),
        Field(name="scores", dtype=Array(Float32)),
        Field(name="ids", dtype=Array(Int64)),
        Field(name="tags", dtype=Array(String)),
    ],
    source=src,
)
req = RequestSource(name="req", schema=[Field(name="val_to_add", dtype=Int64)])


@on_demand_feature_view(sources=[stats, req], schema=[Field(name="conv_plus", dtype=Float64)])
def odfv(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["conv_plus"] = inputs["conv_rate"] + inputs["val_to_add"]
    return out
"""

# Run by banquet's interpreter (the `feast` name is banquet) and by a real Feast's: the
# shapes each gives, as JSON.
PROBE = r"""
import json, os, subprocess, sys, warnings
from datetime import datetime
from pathlib import Path
warnings.filterwarnings("ignore")
import pandas as pd
from feast import FeatureStore

os.chdir(sys.argv[1])
feast = str(Path(sys.executable).with_name("feast"))
subprocess.run([feast, "apply"], check=True, capture_output=True)
store = FeatureStore(repo_path=".")
store.materialize(datetime(2026, 1, 1), datetime(2026, 12, 2))
FEATS = ["stats:" + f for f in
         ("conv_rate", "acc_rate", "trips", "small", "name", "flag", "scores", "ids", "tags")]
out = {}
rows = [{"driver_id": d, "val_to_add": v, "extra": e, "customer_id": 5}
        for d, v, e in ((1001, 10, "e1"), (1002, 20, "e2"), (9, 1, "e3"))]
with_odfv = store.get_online_features(features=FEATS + ["odfv:conv_plus"], entity_rows=rows)
out["odfv_dict"] = with_odfv.to_dict()
plain = store.get_online_features(
    features=FEATS[:3], entity_rows=[{"driver_id": 1001, "extra": 5}, {"driver_id": 9, "extra": 6}]
)
out["plain_keys"] = list(plain.to_dict())
out["plain_ts"] = plain.to_dict(include_event_timestamps=True)
out["odfv_ts"] = {k: v for k, v in with_odfv.to_dict(include_event_timestamps=True).items()
                  if k.endswith("__ts")}
df = with_odfv.to_df()
out["df_dtypes"] = {c: str(t).replace("str", "object") for c, t in df.dtypes.items()}
out["df_cells"] = {c: type(df[c].iloc[0]).__name__ for c in df.columns}
out["df_ts_dtypes"] = {c: str(t) for c, t in
                       with_odfv.to_df(include_event_timestamps=True).dtypes.items()
                       if c.endswith("__ts")}
naive = pd.DataFrame({"driver_id": [1001, 1002],
                      "event_timestamp": [datetime(2026, 12, 1, 11, 30), datetime(2026, 12, 1, 11)],
                      "val_to_add": [1, 2]})
hist = store.get_historical_features(entity_df=naive, features=FEATS[:2]).to_df()
out["hist_ts_tz"] = str(hist["event_timestamp"].dt.tz)
out["hist_rows"] = sorted([int(d), t.isoformat()] for d, t in
                          zip(hist["driver_id"], hist["event_timestamp"]))
zoned = naive.assign(event_timestamp=naive["event_timestamp"].dt.tz_localize("US/Eastern"))
hist = store.get_historical_features(entity_df=zoned, features=FEATS[:2]).to_df()
out["zoned_ts_tz"] = str(hist["event_timestamp"].dt.tz)
out["zoned_rows"] = sorted([int(d), t.isoformat()] for d, t in
                           zip(hist["driver_id"], hist["event_timestamp"]))
print("PROBE " + json.dumps(out, default=str))
"""


def write_repo(root: Path) -> Path:
    import numpy as np
    import pandas as pd

    (root / "data").mkdir(parents=True)
    ts = pd.to_datetime([NOW - timedelta(hours=h) for h in (3, 2, 1)]).tz_localize("UTC")
    pd.DataFrame(
        {
            "driver_id": [1001, 1002, 1001],
            "event_timestamp": ts,
            "created": pd.to_datetime([NOW] * 3).tz_localize("UTC"),
            "conv_rate": np.array([0.5, 0.25, 0.75], dtype="float32"),
            "acc_rate": [0.1, 0.2, 0.3],
            "trips": [10, 20, 30],
            "small": np.array([1, 2, 3], dtype="int32"),
            "name": ["a", "b", "c"],
            "flag": [True, False, True],
            "scores": [np.array(v, dtype="float32") for v in ([1.5, 2.5], [3.5], [4.5, 5.5])],
            "ids": [[1, 2], [3], [4, 5]],
            "tags": [["x"], ["y", "z"], []],
        }
    ).to_parquet(root / "data" / "stats.parquet")
    (root / "feature_store.yaml").write_text(
        "project: shapes\nregistry: data/registry.db\nprovider: local\n"
        "online_store:\n  type: sqlite\n  path: data/online_store.db\n"
        "entity_key_serialization_version: 3\n"
    )
    (root / "features.py").write_text(FEATURES_PY)
    return root


def probe(python: str, repo: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [python, "-c", PROBE, str(repo)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=repo,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")][-1]
    return json.loads(line[len("PROBE ") :])  # type: ignore[no-any-return]


FEATURE_NAMES = ["conv_rate", "acc_rate", "trips", "small", "name", "flag", "scores", "ids"]


@pytest.fixture(scope="module")
def banquet_shapes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    repo = write_repo(tmp_path_factory.mktemp("shapes") / "repo")
    return probe(sys.executable, repo)


def test_online_dict_has_join_keys_and_features_only(banquet_shapes: dict[str, Any]) -> None:
    got = banquet_shapes["odfv_dict"]
    # the join keys given (customer_id is a project entity's join key, so Feast echoes it),
    # then the features in request order; no request field (val_to_add), no "extra"
    assert list(got) == ["driver_id", "customer_id", *FEATURE_NAMES, "tags", "conv_plus"]
    assert got["driver_id"] == [1001, 1002, 9]
    assert got["conv_rate"] == [0.75, 0.25, None]
    assert got["scores"] == [[4.5, 5.5], [3.5], None]
    assert got["conv_plus"] == [10.75, 20.25, None]
    assert banquet_shapes["plain_keys"] == ["driver_id", "conv_rate", "acc_rate", "trips"]


def test_event_timestamps_are_feasts_seconds(banquet_shapes: dict[str, Any]) -> None:
    got = banquet_shapes["plain_ts"]
    sec = int(datetime.fromisoformat("2026-12-01T11:00:00+00:00").timestamp())
    assert got == {
        "driver_id": [1001, 9],
        "driver_id__ts": [0, 0],  # join keys: 0, as Feast
        "conv_rate": [0.75, None],
        "conv_rate__ts": [sec, 0],  # not found: 0
        "acc_rate": [0.3, None],
        "acc_rate__ts": [sec, 0],
        "trips": [30, None],
        "trips__ts": [sec, 0],
    }
    assert banquet_shapes["odfv_ts"]["conv_plus__ts"] == [0, 0, 0]  # on-demand outputs: 0
    assert set(banquet_shapes["df_ts_dtypes"].values()) == {"int64"}


def test_online_frame_is_feasts(banquet_shapes: dict[str, Any]) -> None:
    dtypes, cells = banquet_shapes["df_dtypes"], banquet_shapes["df_cells"]
    assert dtypes["conv_rate"] == "float64"  # Float32, as Python floats
    assert dtypes["trips"] == dtypes["small"] == "float64"  # integers with a None
    assert dtypes["driver_id"] == "int64"
    assert dtypes["flag"] == "object"  # bools with a None
    assert cells["scores"] == cells["ids"] == cells["tags"] == "list"


def test_historical_timestamps_are_utc_aware_in_input_order(
    banquet_shapes: dict[str, Any],
) -> None:
    assert banquet_shapes["hist_ts_tz"] == banquet_shapes["zoned_ts_tz"] == "UTC"
    assert banquet_shapes["hist_rows"] == [
        [1001, "2026-12-01T11:30:00+00:00"],
        [1002, "2026-12-01T11:00:00+00:00"],
    ]
    assert banquet_shapes["zoned_rows"] == [  # the same instants, in UTC
        [1001, "2026-12-01T16:30:00+00:00"],
        [1002, "2026-12-01T16:00:00+00:00"],
    ]


def test_historical_keeps_input_order_and_columns(tmp_path: Path) -> None:
    """banquet's guarantee beyond Feast's (Feast sorts the rows): input order, every entity
    column kept; only the timestamp column changes, to UTC."""
    import pandas as pd

    from banquet import FeatureStore

    repo = write_repo(tmp_path / "repo")
    subprocess.run(
        [str(Path(sys.executable).with_name("feast")), "apply"], cwd=repo, check=True, timeout=300
    )
    store = FeatureStore(repo_path=repo)
    entity = pd.DataFrame(
        {
            "driver_id": [1002, 1001, 1002],
            "event_timestamp": [NOW, NOW - timedelta(hours=1, minutes=30), NOW],
            "note": ["b", "a", "c"],
        }
    )
    table = store.get_historical_features(entity, ["stats:trips"]).to_arrow()
    assert table.column_names == ["driver_id", "event_timestamp", "note", "trips"]
    assert str(table.schema.field("event_timestamp").type.tz) == "UTC"
    assert table.column("driver_id").to_pylist() == [1002, 1001, 1002]
    assert table.column("note").to_pylist() == ["b", "a", "c"]
    assert table.column("trips").to_pylist() == [20, 10, 20]
    out = store.get_historical_features(entity, ["stats:trips"]).to_df()
    assert str(out["event_timestamp"].dt.tz) == "UTC"
    assert out["event_timestamp"].iloc[0] == pd.Timestamp(NOW, tz="UTC")


def test_http_body_is_feasts(tmp_path: Path) -> None:
    """What banquet serve writes for a request with a request field and another key: the
    body Feast 0.67's server gave for it (recorded), join key and features only."""
    from banquet import FeatureStore
    from banquet.server.encode import online_response

    repo = write_repo(tmp_path / "repo")
    subprocess.run(
        [str(Path(sys.executable).with_name("feast")), "apply"], cwd=repo, check=True, timeout=300
    )
    store = FeatureStore(repo_path=repo)
    store.materialize(datetime(2026, 1, 1), datetime(2026, 12, 2))
    resp = store.get_online_features(
        ["stats:conv_rate", "stats:trips", "odfv:conv_plus"],
        {"driver_id": [1001, 9], "val_to_add": [10, 1], "extra": ["e1", "e3"]},
    )
    body = json.loads(online_response(resp))
    assert body["metadata"]["feature_names"] == ["driver_id", "conv_rate", "trips", "conv_plus"]
    epoch, at = "1970-01-01T00:00:00Z", "2026-12-01T11:00:00Z"
    assert body["results"][:3] == [
        {"values": [1001, 9], "statuses": ["PRESENT"] * 2, "event_timestamps": [epoch] * 2},
        {
            "values": [0.75, None],
            "statuses": ["PRESENT", "NOT_FOUND"],
            "event_timestamps": [at, epoch],
        },
        {
            "values": [30, None],
            "statuses": ["PRESENT", "NOT_FOUND"],
            "event_timestamps": [at, epoch],
        },
    ]
    assert body["results"][3]["values"] == [10.75, None]


def test_online_arrow_keeps_declared_types(tmp_path: Path) -> None:
    """A deliberate difference: to_arrow() keeps the declared types (Feast's infers them
    from Python values, so a Float32 feature becomes double there)."""
    import pyarrow as pa

    from banquet import FeatureStore

    repo = write_repo(tmp_path / "repo")
    subprocess.run(
        [str(Path(sys.executable).with_name("feast")), "apply"], cwd=repo, check=True, timeout=300
    )
    store = FeatureStore(repo_path=repo)
    store.materialize(datetime(2026, 1, 1), datetime(2026, 12, 2))
    resp = store.get_online_features(["stats:conv_rate", "stats:scores"], [{"driver_id": 1001}])
    table = resp.to_arrow(include_event_timestamps=True)
    assert table.column_names == [
        "driver_id",
        "driver_id__ts",
        "conv_rate",
        "conv_rate__ts",
        "scores",
        "scores__ts",
    ]
    assert table.schema.field("conv_rate").type == pa.float32()
    assert table.schema.field("scores").type == pa.list_(pa.float32())
    assert table.schema.field("conv_rate__ts").type == pa.int64()


@pytest.mark.real_feast
def test_shapes_equal_real_feasts(
    banquet_shapes: dict[str, Any], real_feast_python: str, tmp_path: Path
) -> None:
    feast = probe(real_feast_python, write_repo(tmp_path / "repo"))
    # Feast's feature column order varies from run to run (its grouping goes through sets):
    # the columns are compared as dicts and sets, banquet's order is the request's (above)
    assert feast["odfv_dict"] == banquet_shapes["odfv_dict"]
    assert set(feast["plain_keys"]) == set(banquet_shapes["plain_keys"])
    assert feast["plain_keys"][0] == banquet_shapes["plain_keys"][0] == "driver_id"
    for key in ("plain_ts", "odfv_ts", "df_cells", "df_ts_dtypes"):
        assert feast[key] == banquet_shapes[key], key
    assert feast["df_dtypes"] == banquet_shapes["df_dtypes"]
    for key in ("hist_ts_tz", "hist_rows", "zoned_ts_tz", "zoned_rows"):
        assert feast[key] == banquet_shapes[key], key
