"""Offline stores: historical reads for training sets and materialization."""

from __future__ import annotations

from typing import TYPE_CHECKING

from banquet.offline.base import OfflineStore, RetrievalJob

if TYPE_CHECKING:
    from banquet.config import RepoConfig


def open_offline_store(config: RepoConfig) -> OfflineStore:
    kind = config.offline_store.type
    if kind == "postgres":
        from banquet.offline.postgres import PostgresOfflineStore

        return PostgresOfflineStore(config)
    if kind == "spark":
        from banquet.offline.spark.store import SparkOfflineStore

        return SparkOfflineStore(config)
    from banquet.offline.file import FileOfflineStore

    return FileOfflineStore(config)


__all__ = ["OfflineStore", "RetrievalJob", "open_offline_store"]
