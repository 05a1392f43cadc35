"""banquet: a feature store with Feast's Python API and a Rust core.

>>> from banquet import Entity, FeatureView, Field, FileSource, FeatureStore
"""

from __future__ import annotations

from banquet._core import __version__
from banquet.config import RepoConfig
from banquet.entity import Entity
from banquet.feature_service import FeatureService
from banquet.feature_view import BatchFeatureView, FeatureView
from banquet.field import Feature, Field
from banquet.offline.spark.source import SparkSource
from banquet.on_demand import OnDemandFeatureView, on_demand_feature_view
from banquet.sources import DataSource, FileSource, PostgreSQLSource, PushSource, RequestSource
from banquet.store import FeatureStore
from banquet.stream import KafkaSource, StreamFeatureView
from banquet.types import ValueType

__all__ = [
    "BatchFeatureView",
    "DataSource",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "FileSource",
    "KafkaSource",
    "OnDemandFeatureView",
    "PostgreSQLSource",
    "PushSource",
    "RepoConfig",
    "RequestSource",
    "SparkSource",
    "StreamFeatureView",
    "ValueType",
    "__version__",
    "on_demand_feature_view",
]
