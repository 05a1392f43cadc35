"""Feast's ``...postgres_offline_store.postgres_source``."""

from __future__ import annotations

from banquet.sources import (
    PostgreSQLSource,
)
from feast._forward import forward

__all__ = ["PostgreSQLSource"]
__getattr__ = forward(__name__, "banquet.sources")
