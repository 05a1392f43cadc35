"""Feast's ``feast.infra.online_stores.redis``: the Redis store's config."""

from __future__ import annotations

from banquet.config import RedisOnlineConfig as RedisOnlineStoreConfig
from feast._forward import forward

__all__ = ["RedisOnlineStoreConfig"]
__getattr__ = forward(__name__, "banquet.config")
