"""Feast's ``feast.repo_config``: ``RepoConfig`` and ``RegistryConfig``."""

from __future__ import annotations

from banquet.config import (
    RegistryConfig,
    RepoConfig,
)
from feast._forward import forward

__all__ = ["RegistryConfig", "RepoConfig"]
__getattr__ = forward(__name__, "banquet.config")
