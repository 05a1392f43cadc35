"""Feature resolution is linear in the request size: a request naming many features of one wide
view (or of many views) must not cost time quadratic in the number of refs (100k features once
took 4.5 s on the server, 80k refs of one view over four minutes)."""

from __future__ import annotations

import gc
import time
from typing import Any

from banquet import Entity, FeatureView, Field, FileSource
from banquet.registry.base import Catalog
from banquet.request import resolve
from banquet.serving import _plan
from banquet.types import Int64


def _catalog(views: int, width: int) -> Catalog:
    user = Entity(name="user", join_keys=["user_id"])
    src = FileSource(name="src", path="wide.parquet", timestamp_field="ts")
    fields = [Field(name=f"f{j}", dtype=Int64) for j in range(width)]
    fvs = [
        FeatureView(name=f"v{i}", entities=[user], schema=fields, source=src) for i in range(views)
    ]
    state: dict[str, Any] = {
        "entities": {"user": user.to_dict()},
        "data_sources": {"src": src.to_dict()},
        "feature_views": {v.name: v.to_dict() for v in fvs},
        "feature_services": {},
        "on_demand_feature_views": {},
        "materializations": {},
        "version": 1,
    }
    return Catalog("scaling", state)


def _best_time(views: int, width: int) -> float:
    """Best of three: resolve the refs and build the online plan, with the catalog's request
    cache emptied each time, without the garbage collector's pauses."""
    refs = [f"v{i}:f{j}" for i in range(views) for j in range(width)]
    cat = _catalog(views, width)
    best = float("inf")
    for _ in range(3):
        cat.requests.clear()
        gc.disable()
        try:
            t = time.perf_counter()
            _plan(resolve(cat, refs, full_feature_names=True))
            best = min(best, time.perf_counter() - t)
        finally:
            gc.enable()
    return best


def test_one_wide_view_resolves_in_linear_time() -> None:
    small, large = _best_time(1, 10_000), _best_time(1, 40_000)
    # 4x the refs: ~4x the time when linear, ~16x when quadratic
    assert large / small < 8, (small, large)


def test_many_views_resolve_in_linear_time() -> None:
    small, large = _best_time(10, 1_000), _best_time(40, 1_000)
    assert large / small < 8, (small, large)


def test_a_hundred_thousand_features_resolve_well_under_a_second() -> None:
    assert _best_time(100, 1_000) < 1.0
