"""Feast's ``feast.labeling.conflict_policy``: banquet's ``ConflictPolicy``."""

from __future__ import annotations

from banquet.labeling import ConflictPolicy

__all__ = ["ConflictPolicy"]
