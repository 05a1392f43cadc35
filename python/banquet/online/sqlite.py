"""The embedded online store: one SQLite file in WAL mode, one table per feature view.

A thin adapter over ``banquet._core.SqliteStore`` (Rust, bundled SQLite): pooled connections
with cached prepared statements, one transaction per written batch, the GIL released while
SQLite works. Rows are keyed by the serialized entity key; timestamps are integers (UTC
microseconds), so nothing depends on the process time zone. The upsert's ``WHERE`` keeps the
newer event inside SQLite, in the same statement. Layout: ARCHITECTURE.md, "SQLite online
store".

Do not open the database file with Python's ``sqlite3`` in a process that uses this store:
two SQLite libraries in one process release each other's POSIX locks. ``query`` runs SQL
through the store's own SQLite instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from banquet import _core
from banquet.online.base import OnlineStore, batch_columns

if TYPE_CHECKING:
    from banquet.config import RepoConfig, SqliteOnlineConfig
    from banquet.feature_view import FeatureView


def table_name(project: str, view: str) -> str:
    # ':' cannot occur in project or view names, so no two (project, view) pairs share a table.
    return '"' + f"{project}:{view}".replace('"', '""') + '"'


class SqliteOnlineStore(OnlineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        cfg: SqliteOnlineConfig = config.online_store  # type: ignore[assignment]
        self.path = config.resolve(cfg.path)
        self.native = _core.SqliteStore(str(self.path))

    def fast_reader(self) -> _core.SqliteStore | None:
        # serving reads a whole request through it in one Rust call
        return self.native

    @contextmanager
    def bulk(self) -> Iterator[None]:
        self.native.hold_checkpoints()
        try:
            yield
        finally:
            self.native.release_checkpoints()

    def sync(self) -> None:
        # synchronous=NORMAL: a commit reaches the WAL file without an fsync (SQLite fsyncs
        # at checkpoints), so a power loss could drop rows the registry then claims
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:  # no WAL: everything is in the (synced) database file
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create_view(self, project: str, view: FeatureView) -> None:
        self.native.create_view(project, view.storage_name)

    def drop_view(self, project: str, view_name: str) -> None:
        self._forget_ensured(project, view_name)
        self.native.drop_view(project, view_name)

    def write(
        self, project: str, view_name: str, batch: pa.RecordBatch, *, overwrite: bool = False
    ) -> None:
        self.native.write_arrays(project, view_name, *batch_columns(batch), overwrite)

    def read(
        self, project: str, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        return self.native.read(project, [(v, list(keys)) for v, keys in requests])

    def teardown(self, project: str) -> None:
        self.native.teardown(project)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SQL statement, run through the store's own SQLite (for inspection)."""
        return self.native.query(sql, list(params))

    def close(self) -> None:
        self.native.close()
