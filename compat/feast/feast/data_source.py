"""Feast's ``feast.data_source``: sources and ``PushMode``."""

from __future__ import annotations

from banquet.sources import (
    DataSource,
    PushSource,
    RequestSource,
)
from banquet.store import (
    PushMode,
)
from feast._forward import forward

__all__ = ["DataSource", "PushMode", "PushSource", "RequestSource"]
__getattr__ = forward(__name__, "banquet.sources", "banquet")
