"""Feast's ``feast.feature_service``."""

from __future__ import annotations

from banquet.feature_service import (
    FeatureService,
)
from feast._forward import forward

__all__ = ["FeatureService"]
__getattr__ = forward(__name__, "banquet.feature_service")
