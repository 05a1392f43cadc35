"""Feast's ``feast.feature``."""

from __future__ import annotations

from banquet.field import (
    Feature,
)
from feast._forward import forward

__all__ = ["Feature"]
__getattr__ = forward(__name__, "banquet.field")
