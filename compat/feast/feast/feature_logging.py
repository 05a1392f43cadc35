"""Feast's ``feast.feature_logging`` (``LoggingConfig``, when banquet provides it)."""

from __future__ import annotations

from feast._forward import forward

__getattr__ = forward(__name__, "banquet.feature_logging", "banquet")
