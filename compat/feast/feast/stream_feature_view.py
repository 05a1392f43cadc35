"""Feast's ``feast.stream_feature_view``: banquet's ``StreamFeatureView``."""

from __future__ import annotations

from banquet.stream.view import StreamFeatureView
from feast._forward import forward

__all__ = ["StreamFeatureView"]
__getattr__ = forward(__name__, "banquet.stream.view", "banquet.stream")
