"""Feast's ``feast.on_demand_feature_view``."""

from __future__ import annotations

from banquet.on_demand import (
    OnDemandFeatureView,
    on_demand_feature_view,
)
from feast._forward import forward

__all__ = ["OnDemandFeatureView", "on_demand_feature_view"]
__getattr__ = forward(__name__, "banquet.on_demand")
