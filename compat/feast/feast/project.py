"""Feast's ``feast.project`` (``Project``, when banquet provides it)."""

from __future__ import annotations

from feast._forward import forward

__getattr__ = forward(__name__, "banquet.project", "banquet")
