"""Feast's ``feast.labeling`` (``LabelView``, ``ConflictPolicy``, when banquet provides them)."""

from __future__ import annotations

from feast._forward import forward

__getattr__ = forward(__name__, "banquet.labeling", "banquet")
