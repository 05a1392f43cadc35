"""Feast's ``feast.value_type``."""

from __future__ import annotations

from banquet.types import (
    ValueType,
)
from feast._forward import forward

__all__ = ["ValueType"]
__getattr__ = forward(__name__, "banquet.types")
