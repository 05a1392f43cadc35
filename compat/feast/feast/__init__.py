"""Feast's import name, served by banquet (the banquet-feast distribution): ``import feast``
and ``from feast import FeatureStore, ...`` give banquet's objects. Names banquet does not
provide raise AttributeError / ImportError naming them."""

from feast._guard import refuse_real_feast

refuse_real_feast()

from banquet import (  # noqa: E402
    DataSource,
    Entity,
    Feature,
    FeatureService,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    OnDemandFeatureView,
    PushSource,
    RepoConfig,
    RequestSource,
    ValueType,
    __version__,
)
from feast._forward import forward  # noqa: E402

__all__ = [
    "DataSource",
    "Entity",
    "Feature",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "FileSource",
    "OnDemandFeatureView",
    "PushSource",
    "RepoConfig",
    "RequestSource",
    "ValueType",
    "__version__",
]
__getattr__ = forward(__name__, "banquet", "banquet.project", "banquet.labeling")
