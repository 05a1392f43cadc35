"""Feast's ``feast.feature_view``."""

from __future__ import annotations

from banquet.feature_view import (
    FeatureView,
)
from feast._forward import forward

__all__ = ["FeatureView"]
__getattr__ = forward(__name__, "banquet.feature_view", "banquet")
