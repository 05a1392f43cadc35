"""Feast's ``feast.infra.offline_stores.offline_store``."""

from __future__ import annotations

from banquet.offline.base import (
    OfflineStore,
    RetrievalJob,
)
from feast._forward import forward

__all__ = ["OfflineStore", "RetrievalJob"]
__getattr__ = forward(__name__, "banquet.offline.base")
