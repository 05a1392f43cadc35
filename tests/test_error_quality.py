"""Bad input to the read paths and a damaged registry give typed ``BanquetError``s that name the
input and the fix (issue #12, finding 8), never a raw ``ArrowInvalid``, ``KeyError``,
``TypeError`` or a ``_core`` class outside the hierarchy."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from banquet import FeatureStore, _core
from banquet import types as bt
from banquet.errors import (
    BanquetError,
    CorruptDataError,
    DefinitionError,
    EntityDataError,
    InvalidArgument,
    KernelError,
    KernelTypeError,
    KeyTypeError,
    RegistryCorrupt,
)
from banquet.online.base import rows_batch

MakeRepo = Callable[..., Path]
UTC = timezone.utc
T = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture
def store(tmp_repo: MakeRepo) -> FeatureStore:
    s = FeatureStore(repo_path=tmp_repo())
    s.apply()
    s.materialize(datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    return s


# --- entity rows whose values do not share one type ----------------------------------------

MIXED_ENTITY_DFS = {
    "pandas": lambda: pd.DataFrame({"user_id": [1, "a"], "event_timestamp": [T, T]}),
    "dict": lambda: {"user_id": [1, "a"], "event_timestamp": [T, T]},
    "rows": lambda: [{"user_id": 1, "event_timestamp": T}, {"user_id": "a", "event_timestamp": T}],
}


@pytest.mark.parametrize("shape", sorted(MIXED_ENTITY_DFS))
def test_mixed_type_keys_in_entity_df_are_a_typed_error(store: FeatureStore, shape: str) -> None:
    with pytest.raises(EntityDataError, match=r"entity_df column 'user_id'.*single type"):
        store.get_historical_features(MIXED_ENTITY_DFS[shape](), ["user_profile:age"]).to_arrow()


@pytest.mark.parametrize(
    "rows", [[{"user_id": 1}, {"user_id": "a"}], {"user_id": [1, "a"]}], ids=["rows", "columns"]
)
def test_mixed_type_keys_in_entity_rows_are_a_typed_error(store: FeatureStore, rows: Any) -> None:
    with pytest.raises(KeyTypeError, match="'user_id' must hold Int64"):
        store.get_online_features(["user_profile:age"], rows).to_dict()


# --- duplicate column names ----------------------------------------------------------------


def _dup_frames() -> dict[str, Any]:
    df = pd.DataFrame([[1, T, 2]], columns=["user_id", "event_timestamp", "user_id"])
    tbl = pa.Table.from_arrays(
        [pa.array([1]), pa.array([T]), pa.array([T])],
        names=["user_id", "event_timestamp", "event_timestamp"],
    )
    return {"pandas": (df, "'user_id'"), "arrow": (tbl, "'event_timestamp'")}


@pytest.mark.parametrize("shape", ["pandas", "arrow"])
def test_duplicate_columns_in_entity_df_are_a_typed_error(store: FeatureStore, shape: str) -> None:
    frame, name = _dup_frames()[shape]
    with pytest.raises(EntityDataError, match=f"more than one column named {name}"):
        store.get_historical_features(frame, ["user_profile:age"]).to_arrow()


def test_duplicate_columns_in_a_written_frame_are_a_typed_error(store: FeatureStore) -> None:
    frame, _ = _dup_frames()["pandas"]
    with pytest.raises(EntityDataError, match="more than one column named 'user_id'"):
        store.write_to_online_store("user_profile", frame.assign(age=1, segment="x"))


# --- a damaged registry --------------------------------------------------------------------


def _damage(store: FeatureStore, change: Callable[[dict[str, Any]], None]) -> FeatureStore:
    path = Path(store.repo_path) / "data" / "registry.db"
    doc = json.loads(path.read_text())
    change(doc["projects"][store.project])
    path.write_text(json.dumps(doc))
    return FeatureStore(repo_path=store.repo_path)


def _drop(kind: str, name: str, field: str) -> Callable[[dict[str, Any]], None]:
    return lambda state: state[kind][name].pop(field)


def _set(kind: str, name: str, field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda state: state[kind][name].__setitem__(field, value)


DAMAGE = {
    # (change, what the message must name)
    "view lacks name": (_drop("feature_views", "user_profile", "name"), "user_profile"),
    "view lacks source": (_drop("feature_views", "user_profile", "source"), "'source'"),
    "view entities not a list": (
        _set("feature_views", "user_profile", "entities", 7),
        "user_profile",
    ),
    "view features not a list": (
        _set("feature_views", "user_profile", "features", 7),
        "user_profile",
    ),
    "entity lacks join key": (_drop("entities", "user", "join_key"), "entity 'user'"),
    "source lacks kind": (_drop("data_sources", "activity", "kind"), "data source 'activity'"),
    "source kind a list": (_set("data_sources", "activity", "kind", [1]), "data source 'activity'"),
    "service features not a list": (
        _set("feature_services", "model_v1", "features", 7),
        "feature service 'model_v1'",
    ),
    "record not an object": (
        lambda state: state["feature_views"].__setitem__("user_profile", "x"),
        "'user_profile'",
    ),
    "kind not a mapping": (lambda state: state.__setitem__("entities", []), "'entities'"),
    "broken interval": (
        lambda state: state["materializations"].__setitem__("user_profile", [[1]]),
        "'user_profile'",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_malformed_registry_record_is_registry_corrupt(store: FeatureStore, case: str) -> None:
    change, named = DAMAGE[case]
    damaged = _damage(store, change)
    with pytest.raises(RegistryCorrupt) as info:
        damaged.list_feature_views()
        damaged.materialize_incremental(T)
    message = str(info.value)
    assert named in message and "banquet apply" in message, message


# --- kernel errors are banquet errors ------------------------------------------------------


def test_kernel_errors_are_banquet_errors() -> None:
    assert _core.KernelError is KernelError and _core.CorruptDataError is CorruptDataError
    assert issubclass(CorruptDataError, BanquetError)
    with pytest.raises(BanquetError, match="entity side has type Int64"):
        _core.asof_join([pa.array([1])], pa.array([1]), [pa.array(["a"])], pa.array([1]), None, 0)
    with pytest.raises(KernelTypeError, match="Float64") as info:
        _core.asof_join([pa.array([1.0])], pa.array([1]), [pa.array([1.0])], pa.array([1]), None, 0)
    assert isinstance(info.value, TypeError)  # what the stub promised before
    schema = pa.schema([pa.field("a", pa.int64())])
    with pytest.raises(BanquetError):
        _core.decode_values(pa.array([b"\x01garbage"], pa.binary()), schema)


def test_an_undecodable_stored_value_names_its_view(store: FeatureStore) -> None:
    view = store.get_feature_view("user_profile")
    key = _core.serialize_entity_keys(["user_id"], [pa.array([1])])[0].as_py()
    store.online_store.write(
        store.project,
        view.storage_name,
        rows_batch([key], [0], [0], [b"\x01garbage"]),
        overwrite=True,
    )
    with pytest.raises(CorruptDataError, match="feature view 'user_profile'.*re-materialize"):
        store.get_online_features(["user_profile:age"], [{"user_id": 1}]).to_dict()


# --- the façade's own argument checks --------------------------------------------------------


def test_materialize_start_after_end_names_both_times(store: FeatureStore) -> None:
    later, earlier = datetime(2024, 6, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidArgument) as info:
        store.materialize(later, earlier)
    assert "2024-06-01" in str(info.value) and "2020-01-01" in str(info.value)


def test_type_helpers_raise_definition_errors() -> None:
    for bad in (
        lambda: bt.Array(bt.Array(bt.Int64)),
        lambda: bt.from_name("decimal"),
        lambda: bt.from_value_type(bt.ValueType.UNKNOWN),
        lambda: bt.from_arrow(pa.decimal128(10, 2)),
    ):
        with pytest.raises(DefinitionError):
            bad()
