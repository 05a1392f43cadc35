"""Registries: where applied definitions live. ``file`` (the default) and ``sql``."""

from __future__ import annotations

from banquet.registry.base import Catalog, Registry, open_registry

__all__ = ["Catalog", "Registry", "open_registry"]
