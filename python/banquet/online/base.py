"""The online store interface: small enough that a new store is one short module.

Stores hold, per (project, feature view, serialized entity key), one blob from the value codec
(``banquet._core.encode_values``) plus its event and created timestamps (UTC microseconds),
which the store itself compares so that an older event never replaces a newer one.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from banquet import _core
    from banquet.config import RepoConfig
    from banquet.feature_view import FeatureView


COLUMNS = ("entity_key", "event_ts", "created_ts", "value")


def rows_batch(
    keys: Sequence[bytes] | pa.Array,
    event_ts: Sequence[int] | pa.Array,
    created_ts: Sequence[int] | pa.Array | None,
    blobs: Sequence[bytes | None] | pa.Array,
) -> pa.RecordBatch:
    """The batch ``OnlineStore.write`` takes, from lists (the edge: tests, callers holding
    Python values) or Arrow arrays (passed through). Timestamps are UTC microseconds;
    ``created_ts`` None means 0 for every row. Lists that are not bytes / integers raise
    ``StoreError``."""
    from banquet.errors import StoreError

    def col(values: Sequence[object] | pa.Array | pa.ChunkedArray, typ: pa.DataType) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            return values.combine_chunks()
        if isinstance(values, pa.Array):
            return values
        return pa.array(list(values), typ)

    try:
        n = len(keys)
        columns = [
            col(keys, pa.binary()),
            col(event_ts, pa.int64()),
            col(created_ts, pa.int64()) if created_ts is not None else pa.nulls(n, pa.int64()),
            col(blobs, pa.binary()),
        ]
    except (TypeError, pa.ArrowException):
        raise StoreError("keys and values to write must be bytes and timestamps integers") from None
    return pa.RecordBatch.from_arrays(columns, names=list(COLUMNS))


def batch_columns(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """``(entity_key, event_ts, created_ts, value)`` of a write's batch."""
    return (
        batch.column("entity_key"),
        batch.column("event_ts"),
        batch.column("created_ts"),
        batch.column("value"),
    )


class OnlineStore(abc.ABC):
    def __init__(self, config: RepoConfig) -> None:
        self.config = config
        # (project, storage name) that ensure_view created in this process
        self._ensured: set[tuple[str, str]] = set()

    @abc.abstractmethod
    def create_view(self, project: str, view: FeatureView) -> None:
        """Make storage for ``view`` under ``view.storage_name`` (idempotent)."""

    @abc.abstractmethod
    def drop_view(self, project: str, view_name: str) -> None:
        """Remove the storage and data kept under ``view_name``, a view's ``storage_name``
        (idempotent)."""

    @abc.abstractmethod
    def write(
        self, project: str, view_name: str, batch: pa.RecordBatch, *, overwrite: bool = False
    ) -> None:
        """Upsert the rows of ``batch`` (columns ``entity_key``: binary serialized keys,
        ``event_ts`` and ``created_ts``: int64 or timestamp[us] UTC microseconds, a null
        created time is 0, ``value``: binary blobs; ``rows_batch`` builds one). A row
        replaces the stored one only if its (event_ts, created_ts) is not older, decided
        inside the store, atomically. ``overwrite``: every given row replaces the stored
        one, newer or not (one row per key expected). Stores hand the Arrow columns to Rust
        as they are: no Python object per row."""

    @abc.abstractmethod
    def read(
        self, project: str, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        """For each (view name, keys) pair, the stored blob per key (None when absent), in
        key order. Implementations make as few round trips as they can."""

    @abc.abstractmethod
    def teardown(self, project: str) -> None:
        """Remove everything this project stored (and nothing else)."""

    def ensure_view(self, project: str, view: FeatureView) -> None:
        """``create_view`` once per process and view: writers call it so that storage lost
        behind the registry's back (a deleted database file) is recreated, not an error."""
        if (project, view.storage_name) not in self._ensured:
            self.create_view(project, view)
            self._ensured.add((project, view.storage_name))

    def _forget_ensured(self, project: str, view_name: str) -> None:
        """``drop_view`` calls it: a later ``ensure_view`` must create the storage again."""
        self._ensured.discard((project, view_name))

    def fast_reader(self) -> _core.SqliteStore | None:
        """The native store ``_core.OnlinePlan.serve`` reads in one Rust call (the whole
        ``get_online_features`` request, GIL released), or None: serving then goes through
        ``read``. Only the embedded store has one."""
        return None

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Around a materialization: the store may put off background upkeep (SQLite: WAL
        checkpoints) until the end, so it does not slow the writes and the registry update."""
        yield

    def sync(self) -> None:  # noqa: B027 - optional hook
        """Make what was written so far survive a power loss: a materialization calls it
        before it records its interval. Nothing to do for the server stores (a Postgres
        commit is durable; Redis's persistence is the server's own setting)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
