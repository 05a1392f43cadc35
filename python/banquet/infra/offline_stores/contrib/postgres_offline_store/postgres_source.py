"""Feast's import path for ``PostgreSQLSource``; the class lives in :mod:`banquet.sources`.

``from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import
PostgreSQLSource`` keeps working with ``feast`` replaced by ``banquet``.
"""

from banquet.sources import PostgreSQLSource

__all__ = ["PostgreSQLSource"]
