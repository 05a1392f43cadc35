"""Feast's ``feast.feature_store``."""

from __future__ import annotations

from banquet.store import (
    FeatureStore,
)
from feast._forward import forward

__all__ = ["FeatureStore"]
__getattr__ = forward(__name__, "banquet.store")
