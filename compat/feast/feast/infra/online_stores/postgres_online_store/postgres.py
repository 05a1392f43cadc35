"""Feast's ``...postgres_online_store.postgres``: the Postgres store's config."""

from __future__ import annotations

from banquet.config import PostgresOnlineConfig as PostgreSQLOnlineStoreConfig
from feast._forward import forward

__all__ = ["PostgreSQLOnlineStoreConfig"]
__getattr__ = forward(__name__, "banquet.config")
