"""Feast's ``feast.field``."""

from __future__ import annotations

from banquet.field import (
    Field,
)
from feast._forward import forward

__all__ = ["Field"]
__getattr__ = forward(__name__, "banquet.field")
