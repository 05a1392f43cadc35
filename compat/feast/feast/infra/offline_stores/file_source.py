"""Feast's ``feast.infra.offline_stores.file_source``."""

from __future__ import annotations

from banquet.sources import (
    FileSource,
)
from feast._forward import forward

__all__ = ["FileSource"]
__getattr__ = forward(__name__, "banquet.feature_logging", "banquet.sources", "banquet")
