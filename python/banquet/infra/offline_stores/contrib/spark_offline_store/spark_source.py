"""Feast's import path for ``SparkSource``; the class lives in
:mod:`banquet.offline.spark.source`.

``from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import
SparkSource`` keeps working with ``feast`` replaced by ``banquet``.
"""

from banquet.offline.spark.source import SparkSource

__all__ = ["SparkSource"]
