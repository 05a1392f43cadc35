"""The embedded online store: one SQLite file in WAL mode, one table per feature view.

Rows are keyed by the serialized entity key; timestamps are integers (UTC microseconds), so
nothing depends on the process time zone. The upsert's ``WHERE`` keeps the newer event inside
SQLite, in the same statement.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from banquet.errors import StoreError
from banquet.online.base import OnlineStore

if TYPE_CHECKING:
    from banquet.config import RepoConfig, SqliteOnlineConfig
    from banquet.feature_view import FeatureView

_VIEWS = "banquet_views"  # which tables belong to which project, so teardown drops only those
_MAX_VARS = 900  # stay under SQLite's bound-parameter limit on old builds


def table_name(project: str, view: str) -> str:
    # ':' cannot occur in project or view names, so no two (project, view) pairs share a table.
    return '"' + f"{project}:{view}".replace('"', '""') + '"'


class SqliteOnlineStore(OnlineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        cfg: SqliteOnlineConfig = config.online_store  # type: ignore[assignment]
        self.path = config.resolve(cfg.path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA cache_size=-131072")  # 128 MiB: bulk upserts stay in memory
            self._local.conn = conn
        return conn

    def create_view(self, project: str, view: FeatureView) -> None:
        conn = self._conn()
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table_name(project, view.name)} ("
            "entity_key BLOB PRIMARY KEY, event_ts INTEGER NOT NULL, "
            "created_ts INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_VIEWS} (project TEXT, view TEXT, PRIMARY KEY (project, view))"
        )
        conn.execute(f"INSERT OR IGNORE INTO {_VIEWS} VALUES (?, ?)", (project, view.name))

    def drop_view(self, project: str, view_name: str) -> None:
        self.__dict__.get("_ensured", set()).discard((project, view_name))
        conn = self._conn()
        conn.execute(f"DROP TABLE IF EXISTS {table_name(project, view_name)}")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_VIEWS,)).fetchone():
            conn.execute(
                f"DELETE FROM {_VIEWS} WHERE project = ? AND view = ?", (project, view_name)
            )

    def write(
        self,
        project: str,
        view_name: str,
        keys: Sequence[bytes],
        event_ts: Sequence[int],
        created_ts: Sequence[int],
        blobs: Sequence[bytes],
    ) -> None:
        t = table_name(project, view_name)
        sql = (
            f"INSERT INTO {t} (entity_key, event_ts, created_ts, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(entity_key) DO UPDATE SET event_ts = excluded.event_ts, "
            "created_ts = excluded.created_ts, value = excluded.value "
            f"WHERE (excluded.event_ts, excluded.created_ts) >= ({t}.event_ts, {t}.created_ts)"
        )
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, zip(keys, event_ts, created_ts, blobs))
            conn.execute("COMMIT")
        except BaseException as e:  # any failure (even Ctrl-C) must not leave the write lock held
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise _error(e, view_name) from None
            raise

    def read(
        self, project: str, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        conn = self._conn()
        total = sum(len(keys) for _, keys in requests)
        try:
            if total <= _MAX_VARS:  # the usual online request: one statement for every view
                sql = _union_sql(project, tuple((v, len(k)) for v, k in requests))
                params = [k for _, keys in requests for k in keys]
                found: list[dict[bytes, bytes]] = [{} for _ in requests]
                for i, key, value in conn.execute(sql, params):
                    found[i][key] = value
                return [[f.get(k) for k in keys] for f, (_, keys) in zip(found, requests)]
            out: list[list[bytes | None]] = []
            for view, keys in requests:
                t = table_name(project, view)
                got: dict[bytes, bytes] = {}
                for i in range(0, len(keys), _MAX_VARS):
                    chunk = keys[i : i + _MAX_VARS]
                    q = f"SELECT entity_key, value FROM {t} WHERE entity_key IN ({','.join('?' * len(chunk))})"
                    got.update(conn.execute(q, chunk).fetchall())
                out.append([got.get(k) for k in keys])
            return out
        except sqlite3.OperationalError as e:
            raise _error(e, _missing_view(e, project, requests)) from None

    def teardown(self, project: str) -> None:
        conn = self._conn()
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (_VIEWS,)).fetchone():
            return
        views = conn.execute(f"SELECT view FROM {_VIEWS} WHERE project = ?", (project,)).fetchall()
        for (view,) in views:
            self.drop_view(project, view)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


@functools.lru_cache(maxsize=512)
def _union_sql(project: str, shape: tuple[tuple[str, int], ...]) -> str:
    """One SELECT per (view, number of keys), glued with UNION ALL; tagged by request index."""
    return " UNION ALL ".join(
        f"SELECT {i}, entity_key, value FROM {table_name(project, view)} "
        f"WHERE entity_key IN ({','.join('?' * n)})"
        for i, (view, n) in enumerate(shape)
    )


def _missing_view(
    e: sqlite3.OperationalError, project: str, requests: Sequence[tuple[str, Any]]
) -> str:
    """The view whose table a 'no such table' error names (else the first one)."""
    for view, _ in requests:
        if f"{project}:{view}" in str(e):
            return view
    return requests[0][0] if requests else "?"


def _error(e: sqlite3.Error, view: str) -> StoreError:
    if "no such table" in str(e):
        return StoreError(
            f"the online store has no table for feature view {view!r}; run `banquet apply` "
            "(and materialize) first"
        )
    return StoreError(f"SQLite online store: {e}")
