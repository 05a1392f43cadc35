"""Online stores: the latest feature values per entity, for serving."""

from __future__ import annotations

from typing import TYPE_CHECKING

from banquet.online.base import OnlineStore

if TYPE_CHECKING:
    from banquet.config import RepoConfig


def open_online_store(config: RepoConfig) -> OnlineStore:
    kind = config.online_store.type
    if kind == "redis":
        from banquet.online.redis import RedisOnlineStore

        return RedisOnlineStore(config)
    if kind == "postgres":
        from banquet.online.postgres import PostgresOnlineStore

        return PostgresOnlineStore(config)
    if kind == "remote":
        from banquet.online.remote import RemoteOnlineStore

        return RemoteOnlineStore(config)
    from banquet.online.sqlite import SqliteOnlineStore

    return SqliteOnlineStore(config)


__all__ = ["OnlineStore", "open_online_store"]
