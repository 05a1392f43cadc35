"""Feast's ``feast.batch_feature_view``: banquet's ``BatchFeatureView``."""

from __future__ import annotations

from banquet import BatchFeatureView
from feast._forward import forward

__all__ = ["BatchFeatureView"]
__getattr__ = forward(__name__, "banquet.feature_view")
