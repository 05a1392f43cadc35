"""A stored value that does not decode for its view names the view AND the entity key in the
``CorruptDataError`` (issue #13): with many keys, the view alone does not say which row to
re-write. Both read paths are covered: the SQLite fast path (one Rust call) and the general
path (keys serialized in Python, then Rust decodes)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from banquet import FeatureStore, _core
from banquet.errors import BanquetError, CorruptDataError
from banquet.online.base import rows_batch

UTC = timezone.utc


@pytest.fixture
def store(tmp_repo: Callable[..., Path]) -> FeatureStore:
    s = FeatureStore(repo_path=tmp_repo())
    s.apply()
    s.materialize(datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
    return s


def _damage(store: FeatureStore, user_id: int) -> None:
    view = store.get_feature_view("user_profile")
    key = _core.serialize_entity_keys(["user_id"], [pa.array([user_id])])[0].as_py()
    store.online_store.write(
        store.project,
        view.storage_name,
        rows_batch([key], [0], [0], [b"\x01garbage"]),
        overwrite=True,
    )


@pytest.mark.parametrize(
    "rows",
    [
        [{"user_id": 2}, {"user_id": 3}],  # plain lists: the SQLite fast path
        {"user_id": np.array([2, 3])},  # numpy values: the general path
    ],
    ids=["fast", "general"],
)
def test_an_undecodable_value_names_the_view_and_the_key(store: FeatureStore, rows: object) -> None:
    _damage(store, 3)
    with pytest.raises(CorruptDataError) as info:
        store.get_online_features(["user_profile:age"], rows).to_dict()
    message = str(info.value)
    assert isinstance(info.value, BanquetError)
    assert "feature view 'user_profile'" in message, message
    assert "user_id=3" in message and "user_id=2" not in message, message
    assert "re-materialize" in message, message
    # the other keys still read
    got = store.get_online_features(["user_profile:age"], [{"user_id": 2}]).to_dict()
    assert got["user_id"] == [2]
