"""The Spark offline store: ``SparkSource`` (source.py), the store (store.py), the session
(session.py), the per-partition point-in-time join plan (join.py) and the retrieval job
(retrieval.py). pyspark is imported only when a Spark store is used."""

from banquet.offline.spark.source import SparkSource

__all__ = ["SparkSource"]
