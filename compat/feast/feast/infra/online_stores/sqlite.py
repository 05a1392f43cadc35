"""Feast's ``feast.infra.online_stores.sqlite``: the SQLite store's config."""

from __future__ import annotations

from banquet.config import SqliteOnlineConfig as SqliteOnlineStoreConfig
from feast._forward import forward

__all__ = ["SqliteOnlineStoreConfig"]
__getattr__ = forward(__name__, "banquet.config")
