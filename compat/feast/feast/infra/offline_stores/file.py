"""Feast's ``feast.infra.offline_stores.file``: the file offline store's config."""

from __future__ import annotations

from banquet.config import FileOfflineConfig as FileOfflineStoreConfig
from feast._forward import forward

__all__ = ["FileOfflineStoreConfig"]
__getattr__ = forward(__name__, "banquet.config")
