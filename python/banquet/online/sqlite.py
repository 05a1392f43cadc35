"""The embedded online store: one SQLite file in WAL mode, one table per feature view.

Rows are keyed by the serialized entity key; timestamps are integers (UTC microseconds), so
nothing depends on the process time zone. The upsert's ``WHERE`` keeps the newer event inside
SQLite, in the same statement.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from banquet.errors import StoreError
from banquet.online.base import OnlineStore

if TYPE_CHECKING:
    from banquet.config import RepoConfig, SqliteOnlineConfig
    from banquet.feature_view import FeatureView

_VIEWS = "banquet_views"  # which tables belong to which project, so teardown drops only those
_MAX_VARS = 900  # stay under SQLite's bound-parameter limit on old builds


def table_name(project: str, view: str) -> str:
    return '"' + f"{project}__{view}".replace('"', '""') + '"'


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
            conn.execute(f"DELETE FROM {_VIEWS} WHERE project = ? AND view = ?", (project, view_name))

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
        out: list[list[bytes | None]] = []
        try:
            for view, keys in requests:
                t = table_name(project, view)
                if len(keys) == 1:
                    row = conn.execute(f"SELECT value FROM {t} WHERE entity_key = ?", (keys[0],)).fetchone()
                    out.append([row[0] if row else None])
                    continue
                found: dict[bytes, bytes] = {}
                for i in range(0, len(keys), _MAX_VARS):
                    chunk = keys[i : i + _MAX_VARS]
                    q = f"SELECT entity_key, value FROM {t} WHERE entity_key IN ({','.join('?' * len(chunk))})"
                    found.update(conn.execute(q, chunk).fetchall())
                out.append([found.get(k) for k in keys])
        except sqlite3.OperationalError as e:
            raise _error(e, requests[len(out)][0]) from None
        return out

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


def _error(e: sqlite3.Error, view: str) -> StoreError:
    if "no such table" in str(e):
        return StoreError(
            f"the online store has no table for feature view {view!r}; run `banquet apply` "
            "(and materialize) first"
        )
    return StoreError(f"SQLite online store: {e}")
