"""Feast's ``feast.infra.online_stores.remote``: the remote online store's config."""

from __future__ import annotations

from banquet.config import RemoteOnlineConfig as RemoteOnlineStoreConfig
from feast._forward import forward

__all__ = ["RemoteOnlineStoreConfig"]
__getattr__ = forward(__name__, "banquet.online.remote", "banquet.config")
