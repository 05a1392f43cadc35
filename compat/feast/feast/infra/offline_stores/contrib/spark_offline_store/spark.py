"""Feast's ``...spark_offline_store.spark``: the Spark offline store's config."""

from __future__ import annotations

from banquet.config import SparkOfflineConfig as SparkOfflineStoreConfig
from feast._forward import forward

__all__ = ["SparkOfflineStoreConfig"]
__getattr__ = forward(__name__, "banquet.config")
