"""``get_online_features`` on the embedded (SQLite) online store: request forms, output shape,
statuses (ttl enforced at read time), output formats, key coercion, typed errors, and every
feature type round-tripping through materialization."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import FeatureStore
from banquet.errors import (
    EntityDataError,
    FeatureNameCollisionError,
    FeatureNotFound,
    FeatureServiceNotFound,
    FeatureViewNotFound,
    InvalidFeatureRef,
    KeyTypeError,
    MissingJoinKeyError,
    NotFoundError,
)

UTC = timezone.utc
PROJECT = "online_test"

YAML = f"""\
project: {PROJECT}
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""

FEATURES = """\
from datetime import timedelta

from banquet import Entity, FeatureService, FeatureView, Field, FileSource
from banquet.types import (
    Array, Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp,
)

user = Entity(name="user", join_keys=["user_id"])
shop = Entity(name="shop", join_keys=["shop_id"])

stats = FeatureView(
    name="stats",
    entities=[user],
    schema=[Field(name="clicks", dtype=Int64), Field(name="score", dtype=Float64),
            Field(name="label", dtype=String)],
    source=FileSource(name="stats_src", path="data/stats.parquet", timestamp_field="ts"),
)

fresh = FeatureView(
    name="fresh",
    entities=[user],
    ttl=timedelta(days=1),
    schema=[Field(name="level", dtype=Int64), Field(name="label", dtype=String)],
    source=FileSource(name="fresh_src", path="data/fresh.parquet", timestamp_field="ts"),
)

shops = FeatureView(
    name="shops",
    entities=[shop],
    schema=[Field(name="shop_id", dtype=Int32), Field(name="rating", dtype=Float32)],
    source=FileSource(name="shops_src", path="data/shops.parquet", timestamp_field="ts"),
)

pairs = FeatureView(
    name="pairs",
    entities=[user, shop],
    schema=[Field(name="shop_id", dtype=Int32), Field(name="visits", dtype=Int64)],
    source=FileSource(name="pairs_src", path="data/pairs.parquet", timestamp_field="ts"),
)

all_types = FeatureView(
    name="all_types",
    entities=[user],
    schema=[
        Field(name="f_int32", dtype=Int32),
        Field(name="f_int64", dtype=Int64),
        Field(name="f_float32", dtype=Float32),
        Field(name="f_float64", dtype=Float64),
        Field(name="f_string", dtype=String),
        Field(name="f_bytes", dtype=Bytes),
        Field(name="f_bool", dtype=Bool),
        Field(name="f_ts", dtype=UnixTimestamp),
        Field(name="a_int32", dtype=Array(Int32)),
        Field(name="a_int64", dtype=Array(Int64)),
        Field(name="a_float32", dtype=Array(Float32)),
        Field(name="a_float64", dtype=Array(Float64)),
        Field(name="a_string", dtype=Array(String)),
        Field(name="a_bytes", dtype=Array(Bytes)),
        Field(name="a_bool", dtype=Array(Bool)),
        Field(name="a_ts", dtype=Array(UnixTimestamp)),
    ],
    source=FileSource(name="types_src", path="data/types.parquet", timestamp_field="ts"),
)

svc = FeatureService(name="svc", features=[stats[["score", "clicks"]], fresh, pairs])
renamed = FeatureService(
    name="renamed",
    features=[stats[["clicks"]].with_name("s2"), stats[["clicks"]].with_join_key_map({"user_id": "buyer"})],
)
"""

NOW = datetime.now(UTC).replace(microsecond=0)
T_OLD = NOW - timedelta(days=3)
T_NEW = NOW - timedelta(hours=1)

STATS = {  # user 1 has two rows: the newer one wins; user 3 has a null label; user 4 none at all
    "user_id": pa.array([1, 2, 3, 1], pa.int64()),
    "ts": pa.array([T_OLD, T_NEW, T_NEW, T_NEW], pa.timestamp("us", tz="UTC")),
    "clicks": pa.array([10, 20, 30, 11], pa.int64()),
    "score": pa.array([0.1, 0.2, None, 1.1], pa.float64()),
    "label": pa.array(["old", "b", None, "a"], pa.string()),
}
FRESH = {  # user 1: recent, user 2: older than the view's one day ttl, user 3: recent null
    "user_id": pa.array([1, 2, 3], pa.int64()),
    "ts": pa.array([T_NEW, T_OLD, T_NEW], pa.timestamp("us", tz="UTC")),
    "level": pa.array([5, 6, None], pa.int64()),
    "label": pa.array(["f1", "f2", "f3"], pa.string()),
}
SHOPS = {
    "shop_id": pa.array([7, 8], pa.int32()),
    "ts": pa.array([T_NEW, T_NEW], pa.timestamp("us", tz="UTC")),
    "rating": pa.array([4.5, 3.25], pa.float32()),
}
PAIRS = {
    "user_id": pa.array([1, 1, 2], pa.int64()),
    "shop_id": pa.array([7, 8, 7], pa.int32()),
    "ts": pa.array([T_NEW, T_NEW, T_NEW], pa.timestamp("us", tz="UTC")),
    "visits": pa.array([17, 18, 27], pa.int64()),
}

TS1 = datetime(2020, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)
TS2 = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
TYPE_VALUES: dict[str, tuple[pa.DataType, list[Any]]] = {
    # user 1: values, user 2: nulls, user 3: edge values (empty lists, lists holding nulls)
    "f_int32": (pa.int32(), [-(2**31), None, 2**31 - 1]),
    "f_int64": (pa.int64(), [-(2**63), None, 2**63 - 1]),
    "f_float32": (pa.float32(), [1.5, None, float("inf")]),
    "f_float64": (pa.float64(), [-0.1, None, 1e300]),
    "f_string": (pa.string(), ["héllo ✓", None, ""]),
    "f_bytes": (pa.binary(), [b"\x00\xff\x01", None, b""]),
    "f_bool": (pa.bool_(), [True, None, False]),
    "f_ts": (pa.timestamp("us", tz="UTC"), [TS1, None, TS2]),
    "a_int32": (pa.list_(pa.int32()), [[1, -2, 3], None, []]),
    "a_int64": (pa.list_(pa.int64()), [[2**40, None], None, [None]]),
    "a_float32": (pa.list_(pa.float32()), [[0.5, -1.25], None, []]),
    "a_float64": (pa.list_(pa.float64()), [[0.1, 2.5e-8], None, [None, 1.0]]),
    "a_string": (pa.list_(pa.string()), [["a", "", "ü"], None, [None]]),
    "a_bytes": (pa.list_(pa.binary()), [[b"x", b"\x00"], None, []]),
    "a_bool": (pa.list_(pa.bool_()), [[True, False], None, [None, True]]),
    "a_ts": (pa.list_(pa.timestamp("us", tz="UTC")), [[TS1, TS2], None, []]),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("online")
    (root / "feature_store.yaml").write_text(YAML)
    (root / "features.py").write_text(FEATURES)
    data = root / "data"
    data.mkdir()
    for name, cols in (("stats", STATS), ("fresh", FRESH), ("shops", SHOPS), ("pairs", PAIRS)):
        pq.write_table(pa.table(cols), data / f"{name}.parquet")
    types_table = {
        "user_id": pa.array([1, 2, 3], pa.int64()),
        "ts": pa.array([T_NEW] * 3, pa.timestamp("us", tz="UTC")),
        **{n: pa.array(v, t) for n, (t, v) in TYPE_VALUES.items()},
    }
    pq.write_table(pa.table(types_table), data / "types.parquet")
    store = FeatureStore(repo_path=root)
    store.apply()
    store.materialize(NOW - timedelta(days=10), NOW)
    return root


@pytest.fixture
def store(repo: Path) -> FeatureStore:
    return FeatureStore(repo_path=repo)


# --- request forms and output shape --------------------------------------------------------------


def test_refs_with_list_of_dicts(store: FeatureStore) -> None:
    resp = store.get_online_features(
        ["stats:clicks", "stats:label", "stats:score"],
        [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}, {"user_id": 4}],
    )
    assert resp.to_dict() == {
        "user_id": [1, 2, 3, 4],
        "clicks": [11, 20, 30, None],
        "label": ["a", "b", None, None],
        "score": [1.1, 0.2, None, None],
    }
    assert list(resp.to_dict()) == ["user_id", "clicks", "label", "score"]
    assert resp.statuses["clicks"] == ["PRESENT", "PRESENT", "PRESENT", "NOT_FOUND"]
    assert resp.statuses["label"] == ["PRESENT", "PRESENT", "NULL_VALUE", "NOT_FOUND"]
    assert resp.statuses["score"] == ["PRESENT", "PRESENT", "NULL_VALUE", "NOT_FOUND"]
    us = int(T_NEW.timestamp()) * 1_000_000
    assert resp.event_timestamps["clicks"] == [us, us, us, None]
    # Feast's shape: each column followed by its event times in whole seconds, 0 for none
    with_ts = resp.to_dict(include_event_timestamps=True)
    assert with_ts["clicks__ts"] == [us // 1_000_000] * 3 + [0]
    assert with_ts["user_id__ts"] == [0, 0, 0, 0]
    assert list(with_ts)[:3] == ["user_id", "user_id__ts", "clicks"]


def test_dict_of_columns_gives_the_same(store: FeatureStore) -> None:
    refs = ["stats:score", "stats:clicks"]
    rows = store.get_online_features(refs, [{"user_id": u} for u in (3, 1, 1, 9)])
    cols = store.get_online_features(refs, {"user_id": [3, 1, 1, 9]})
    assert (
        rows.to_dict()
        == cols.to_dict()
        == {
            "user_id": [3, 1, 1, 9],
            "score": [None, 1.1, 1.1, None],
            "clicks": [30, 11, 11, None],
        }
    )
    assert rows.statuses == cols.statuses
    # any sequence per column: tuples, numpy arrays, pandas Series
    for ids in ((3, 1, 1, 9), np.array([3, 1, 1, 9]), pd.Series([3, 1, 1, 9])):
        assert store.get_online_features(refs, {"user_id": ids}).to_dict() == cols.to_dict()


def test_output_order_is_entity_columns_then_request_order(store: FeatureStore) -> None:
    # "note" is no join key: as Feast's, it is not echoed
    resp = store.get_online_features(
        ["fresh:level", "stats:clicks", "pairs:visits", "stats:score"],
        [{"shop_id": 7, "user_id": 1, "note": "x"}],
    )
    assert list(resp.to_dict()) == [
        "shop_id",
        "user_id",
        "level",
        "clicks",
        "visits",
        "score",
    ]
    assert resp.to_dict() == {
        "shop_id": [7],
        "user_id": [1],
        "level": [5],
        "clicks": [11],
        "visits": [17],
        "score": [1.1],
    }
    assert resp.to_arrow().column_names == list(resp.to_dict())
    assert list(resp.to_df().columns) == list(resp.to_dict())


def test_full_feature_names(store: FeatureStore) -> None:
    refs = ["stats:label", "fresh:label", "stats:clicks"]
    with pytest.raises(FeatureNameCollisionError, match="full_feature_names"):
        store.get_online_features(refs, {"user_id": [1]})
    resp = store.get_online_features(refs, {"user_id": [1, 2]}, full_feature_names=True)
    assert resp.to_dict() == {
        "user_id": [1, 2],
        "stats__label": ["a", "b"],
        "fresh__label": ["f1", None],
        "stats__clicks": [11, 20],
    }
    assert resp.statuses["fresh__label"] == ["PRESENT", "OUTSIDE_MAX_AGE"]


def test_feature_service(store: FeatureStore) -> None:
    svc = store.get_feature_service("svc")
    resp = store.get_online_features(svc, {"user_id": [1, 2], "shop_id": [7, 8]})
    assert resp.to_dict() == {
        "user_id": [1, 2],
        "shop_id": [7, 8],
        "score": [1.1, 0.2],
        "clicks": [11, 20],
        "level": [5, None],
        "label": ["f1", None],
        "visits": [17, None],
    }
    assert resp.statuses["visits"] == ["PRESENT", "NOT_FOUND"]
    assert resp.statuses["level"] == ["PRESENT", "OUTSIDE_MAX_AGE"]
    full = store.get_online_features(svc, {"user_id": [1], "shop_id": [8]}, full_feature_names=True)
    assert list(full.to_dict()) == [
        "user_id",
        "shop_id",
        "stats__score",
        "stats__clicks",
        "fresh__level",
        "fresh__label",
        "pairs__visits",
    ]
    assert full.to_dict()["pairs__visits"] == [18]


def test_feature_service_alias_and_join_key_map(store: FeatureStore) -> None:
    resp = store.get_online_features(
        store.get_feature_service("renamed"),
        {"user_id": [1, 2], "buyer": [2, 5]},
        full_feature_names=True,
    )
    assert resp.to_dict() == {
        "user_id": [1, 2],
        "buyer": [2, 5],
        "s2__clicks": [11, 20],
        "stats__clicks": [20, None],
    }
    with pytest.raises(MissingJoinKeyError, match="buyer"):
        store.get_online_features(
            store.get_feature_service("renamed"), {"user_id": [1]}, full_feature_names=True
        )


def test_composite_keys(store: FeatureStore) -> None:
    resp = store.get_online_features(
        ["pairs:visits"], {"user_id": [1, 1, 2, 2], "shop_id": [7, 8, 7, 8]}
    )
    assert resp.to_dict()["visits"] == [17, 18, 27, None]
    # column order in entity rows does not matter
    rows = [{"shop_id": 8, "user_id": 1}, {"user_id": 2, "shop_id": 7}]
    assert store.get_online_features(["pairs:visits"], rows).to_dict()["visits"] == [18, 27]


# --- ttl at read time ----------------------------------------------------------------------------


def test_ttl_is_enforced_at_read_time(store: FeatureStore) -> None:
    resp = store.get_online_features(["fresh:level", "fresh:label"], {"user_id": [1, 2, 3, 4]})
    assert resp.to_dict() == {
        "user_id": [1, 2, 3, 4],
        "level": [5, None, None, None],
        "label": ["f1", None, "f3", None],
    }
    assert resp.statuses["level"] == ["PRESENT", "OUTSIDE_MAX_AGE", "NULL_VALUE", "NOT_FOUND"]
    assert resp.statuses["label"] == ["PRESENT", "OUTSIDE_MAX_AGE", "PRESENT", "NOT_FOUND"]
    # the expired value is stored (it was materialized): its time is still reported
    assert resp.event_timestamps["level"][1] == int(T_OLD.timestamp()) * 1_000_000
    table = resp.to_arrow()
    assert table.column("level").to_pylist() == [5, None, None, None]
    assert table.column("label").to_pylist() == ["f1", None, "f3", None]
    # views without a ttl never expire: stats' three-day-old row for user 1 was replaced
    # by a newer one, but an old-only value would still be PRESENT
    old = store.get_online_features(["stats:clicks"], {"user_id": [2]})
    assert old.statuses["clicks"] == ["PRESENT"]


def test_ttl_moves_with_the_clock(store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import banquet.serving as serving

    later = (NOW + timedelta(days=1)).timestamp()
    monkeypatch.setattr(serving.time, "time_ns", lambda: int(later * 1e9))
    resp = store.get_online_features(["fresh:level", "stats:clicks"], {"user_id": [1]})
    assert resp.statuses == {"level": ["OUTSIDE_MAX_AGE"], "clicks": ["PRESENT"]}
    assert resp.to_dict()["level"] == [None]


# --- output formats --------------------------------------------------------------------------------


def test_to_arrow_and_to_df(store: FeatureStore) -> None:
    resp = store.get_online_features(
        ["stats:clicks", "stats:score", "stats:label", "shops:rating"],
        {"user_id": [1, 3, 4], "shop_id": [7, 8, 9]},
    )
    table = resp.to_arrow()
    assert table.schema == pa.schema(
        [
            ("user_id", pa.int64()),
            ("shop_id", pa.int32()),
            ("clicks", pa.int64()),
            ("score", pa.float64()),
            ("label", pa.string()),
            ("rating", pa.float32()),
        ]
    )
    assert table.to_pydict() == {
        "user_id": [1, 3, 4],
        "shop_id": [7, 8, 9],
        "clicks": [11, 30, None],
        "score": [1.1, None, None],
        "label": ["a", None, None],
        "rating": [4.5, 3.25, None],
    }
    df = resp.to_df()
    assert list(df.columns) == table.column_names
    assert df["user_id"].tolist() == [1, 3, 4]
    assert df["label"].tolist()[0] == "a" and df["label"].isna().tolist() == [False, True, True]
    assert df["score"].tolist()[0] == 1.1 and math.isnan(df["score"].tolist()[1])
    # to_dict is plain JSON-able Python
    json.dumps(resp.to_dict())


def test_no_rows(store: FeatureStore) -> None:
    resp = store.get_online_features(
        ["stats:clicks", "shops:rating"], {"user_id": [], "shop_id": []}
    )
    assert resp.to_dict() == {"user_id": [], "shop_id": [], "clicks": [], "rating": []}
    table = resp.to_arrow()
    assert table.num_rows == 0
    assert table.schema.field("clicks").type == pa.int64()
    assert table.schema.field("rating").type == pa.float32()
    assert table.schema.field("user_id").type == pa.int64()
    assert table.schema.field("shop_id").type == pa.int32()
    assert len(resp.to_df()) == 0


# --- entity values are coerced to the entity's type ---------------------------------------------


def test_numpy_and_int_width_keys(store: FeatureStore) -> None:
    want = {"clicks": [11, 20], "rating": [4.5, 3.25]}
    for users, shops in (
        ([1, 2], [7, 8]),
        ([np.int64(1), np.int64(2)], [np.int64(7), np.int64(8)]),
        (np.array([1, 2], np.int32), np.array([7, 8], np.int64)),
        (np.array([1, 2], np.uint8), np.array([7, 8], np.int16)),
        (pd.Series([1, 2], dtype="Int64"), pd.Series([7, 8], dtype="int32")),
    ):
        resp = store.get_online_features(
            ["stats:clicks", "shops:rating"], {"user_id": users, "shop_id": shops}
        )
        d = resp.to_dict()
        assert {k: d[k] for k in want} == want, (users, shops)
        # the entity columns come back in the entity's type
        assert d["user_id"] == [1, 2] and d["shop_id"] == [7, 8]
        assert all(type(v) is int for v in d["user_id"] + d["shop_id"])
        schema = resp.to_arrow().schema
        assert schema.field("user_id").type == pa.int64()
        assert schema.field("shop_id").type == pa.int32()
    rows = [{"user_id": np.int32(2), "shop_id": np.int64(8)}]
    assert store.get_online_features(["pairs:visits", "shops:rating"], rows).to_dict()[
        "rating"
    ] == [3.25]


def test_sqlite_fast_path_and_general_path_agree(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain int / str rows take the one-call Rust path on SQLite; anything else (numpy
    values here) the general one. Both give the same values, statuses and times."""
    import banquet.serving as serving

    refs = [
        "fresh:level",
        "stats:clicks",
        "stats:score",
        "pairs:visits",
        "all_types:f_ts",
        "all_types:a_ts",
    ]
    users, shops = [1, 2, 3, 4, 1], [7, 7, 8, 8, 8]

    def read(rows: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        r = store.get_online_features(refs, rows)
        return r.to_dict(), r.statuses, r.event_timestamps

    general = read({"user_id": np.array(users), "shop_id": np.array(shops, np.int32)})

    def no_general(*args: Any) -> None:
        raise AssertionError("the general path ran")

    monkeypatch.setattr(serving, "_read_general", no_general)
    as_dicts = read([{"user_id": u, "shop_id": s} for u, s in zip(users, shops)])
    as_columns = read({"user_id": users, "shop_id": shops})
    assert as_dicts == as_columns == general
    values, statuses, _ = general
    assert values["level"] == [5, None, None, None, 5]
    assert statuses["level"] == ["PRESENT", "OUTSIDE_MAX_AGE", "NULL_VALUE", "NOT_FOUND", "PRESENT"]
    assert values["f_ts"][0] == TS1 and values["a_ts"][0] == [TS1, TS2]


# --- typed errors -----------------------------------------------------------------------------------


def test_unknown_view_and_feature(store: FeatureStore) -> None:
    with pytest.raises(FeatureViewNotFound, match="nope"):
        store.get_online_features(["nope:clicks"], {"user_id": [1]})
    with pytest.raises(FeatureNotFound, match="'stats' has no feature 'nope'"):
        store.get_online_features(["stats:nope"], {"user_id": [1]})
    with pytest.raises(FeatureServiceNotFound):
        from banquet import FeatureService

        store.get_online_features(
            FeatureService(name="ghost", features=[store.get_feature_view("stats")]),
            {"user_id": [1]},
        )
    # all of them are KeyErrors too, like Feast's
    assert issubclass(FeatureViewNotFound, NotFoundError) and issubclass(FeatureNotFound, KeyError)


@pytest.mark.parametrize(
    "ref", ["stats.clicks", "stats:clicks:x", "", ":", "stats:", ":clicks", 5, None]
)
def test_malformed_ref(store: FeatureStore, ref: Any) -> None:
    with pytest.raises((InvalidFeatureRef, FeatureViewNotFound, FeatureNotFound)) as info:
        store.get_online_features([ref], {"user_id": [1]})
    if ref not in (":", "stats:", ":clicks"):
        assert info.type is InvalidFeatureRef
    with pytest.raises(InvalidFeatureRef):
        store.get_online_features([], {"user_id": [1]})


def test_missing_join_key(store: FeatureStore) -> None:
    with pytest.raises(MissingJoinKeyError, match="user_id"):
        store.get_online_features(["stats:clicks"], {"uid": [1]})
    with pytest.raises(MissingJoinKeyError, match="shop_id"):
        store.get_online_features(["pairs:visits"], [{"user_id": 1}])
    assert issubclass(MissingJoinKeyError, EntityDataError)


@pytest.mark.parametrize(
    "value",
    [["1"], [1.5], [None], [2**64], [b"1"], [[1]], [True]],
    ids=["str", "float", "none", "overflow", "bytes", "list", "bool"],
)
def test_wrong_key_type(store: FeatureStore, value: list[Any]) -> None:
    with pytest.raises(KeyTypeError, match="user_id"):
        store.get_online_features(["stats:clicks"], {"user_id": value})


def test_wrong_int32_key(store: FeatureStore) -> None:
    with pytest.raises(KeyTypeError, match="shop_id"):
        store.get_online_features(["shops:rating"], {"shop_id": [2**31]})
    with pytest.raises(KeyTypeError, match="shop_id"):
        store.get_online_features(["shops:rating"], {"shop_id": ["7"]})


def test_malformed_entity_rows(store: FeatureStore) -> None:
    with pytest.raises(EntityDataError, match="different lengths"):
        store.get_online_features(["pairs:visits"], {"user_id": [1, 2], "shop_id": [7]})
    with pytest.raises(EntityDataError, match="same keys"):
        store.get_online_features(["stats:clicks"], [{"user_id": 1}, {"uid": 2}])
    with pytest.raises(EntityDataError, match="list of dicts"):
        store.get_online_features(["stats:clicks"], 1)


# --- every feature type round-trips ----------------------------------------------------------------


def test_all_types_round_trip(store: FeatureStore) -> None:
    refs = [f"all_types:{n}" for n in TYPE_VALUES]
    resp = store.get_online_features(refs, {"user_id": [1, 2, 3, 4]})
    d = resp.to_dict()
    for name, (_, values) in TYPE_VALUES.items():
        assert d[name] == [*values, None], name
        assert resp.statuses[name] == ["PRESENT", "NULL_VALUE", "PRESENT", "NOT_FOUND"], name
    table = resp.to_arrow()
    for name, (arrow_type, values) in TYPE_VALUES.items():
        assert table.schema.field(name).type == arrow_type, name
        assert table.column(name).to_pylist() == [*values, None], name
    assert d["f_ts"][0] == TS1 and d["f_ts"][0].tzinfo is not None
    assert len(resp.to_df()) == 4


def test_float_special_values_round_trip(store: FeatureStore) -> None:
    resp = store.get_online_features(
        ["all_types:f_float32", "all_types:a_float64"], {"user_id": [3]}
    )
    assert resp.to_dict()["f_float32"] == [float("inf")]
    assert resp.to_dict()["a_float64"] == [[None, 1.0]]
