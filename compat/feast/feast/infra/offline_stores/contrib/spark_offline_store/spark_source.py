"""Feast's ``...spark_offline_store.spark_source``: banquet's ``SparkSource``."""

from __future__ import annotations

from banquet.offline.spark.source import SparkSource
from feast._forward import forward

__all__ = ["SparkSource"]
__getattr__ = forward(__name__, "banquet.offline.spark.source")
