"""Feast's ``feast.labeling.label_view``: banquet's ``LabelView``."""

from __future__ import annotations

from banquet.labeling import LabelView

__all__ = ["LabelView"]
