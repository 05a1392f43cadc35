"""Feast's ``...postgres_offline_store.postgres``: the Postgres offline store's config."""

from __future__ import annotations

from banquet.config import PostgresOfflineConfig as PostgreSQLOfflineStoreConfig
from feast._forward import forward

__all__ = ["PostgreSQLOfflineStoreConfig"]
__getattr__ = forward(__name__, "banquet.config")
