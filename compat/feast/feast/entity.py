"""Feast's ``feast.entity``."""

from __future__ import annotations

from banquet.entity import (
    Entity,
)
from feast._forward import forward

__all__ = ["Entity"]
__getattr__ = forward(__name__, "banquet.entity")
