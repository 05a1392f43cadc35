"""Feast's ``feast.aggregation``: banquet's ``Aggregation``."""

from __future__ import annotations

from banquet.aggregation import Aggregation
from feast._forward import forward

__all__ = ["Aggregation"]
__getattr__ = forward(__name__, "banquet.aggregation")
