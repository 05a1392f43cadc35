"""Offline -> online: the latest row per entity key in a time window, encoded and written.

Per view: read ``[start, end]`` from the offline store, keep the latest row per key
(``_core.latest_per_key``, the as-of join's tie rules), serialize keys and encode values in
Rust, write in batches (the store keeps the newer event on conflict), and only then record the
interval in the registry. Re-running a window is idempotent; an interrupted run leaves every
stored row consistent (each is a whole blob) and the interval unrecorded, so it can be rerun.
With several views, the next view's read and reduction overlap the current view's write, and
the finished views' intervals are recorded together at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from banquet import _core
from banquet.entity_data import flat
from banquet.errors import BanquetError, InvalidTimestamp, SchemaMismatch, ValueOutOfRange
from banquet.offline.base import view_rows
from banquet.offline.join import FAN_OUT
from banquet.offline.spill import Partitioner, SpillDir, default_memory_limit, flush_bytes
from banquet.online.base import rows_batch
from banquet.progress import Progress
from banquet.registry.base import current_storage
from banquet.write_checks import (
    check_feature_times,
    check_fits,
    check_times,
    max_future_skew_us,
    out_of_range,
)

if TYPE_CHECKING:
    from banquet.feature_view import FeatureView
    from banquet.offline.base import ViewRows
    from banquet.store import FeatureStore

# Rows per write transaction; a view with more is written in batches, pipelined.
BATCH_ROWS = 100_000


def to_us(ts: datetime) -> int:
    """UTC microseconds; naive datetimes are read as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    delta = ts - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class Window:
    """One view's part of a materialization: the view and its ``[start, end]`` in UTC µs."""

    view: FeatureView
    start_us: int | None
    end_us: int


Encoded = tuple[pa.Array, pa.Array, "pa.Array | None", pa.Array]  # what write_encoded takes


@dataclass
class Winners:
    """A view's window read and reduced to the latest row per key, in serialized-key order;
    the first batch already encoded (so a read-ahead worker does that part too)."""

    window: Window
    rows: ViewRows
    idx: pa.Array  # row numbers into ``rows``, one per distinct key
    key_bytes: pa.Array  # the serialized keys of those rows
    first: Encoded | None = None

    def encoded(self, lo: int) -> Encoded:
        """The batch of winners starting at ``lo``, encoded for ``write_encoded``."""
        if lo == 0 and self.first is not None:
            return self.first
        view, rows = self.window.view, self.rows
        part = self.idx.slice(lo, BATCH_ROWS)
        return encode_rows(
            view,
            self.key_bytes.slice(lo, BATCH_ROWS),
            rows.event_ts.take(part),
            rows.created_ts.take(part) if rows.created_ts is not None else None,
            [rows.table.column(f.name).take(part) for f in view.features],
        )


def materialize_windows(
    store: FeatureStore, windows: list[Window], progress: bool, overwrite: bool = False
) -> None:
    """Materialize several views, one after another, reading the next view's window while
    the current one is written (two cores busy instead of one). Each view's interval is
    recorded once its write succeeded; all of them in one registry update at the end (each
    update is a write + fsync + rename), also when a later view fails. The online store's
    background upkeep waits for the end (``OnlineStore.bulk``). ``overwrite``: the rows
    replace the stored ones even where those are newer (correcting future-dated values)."""
    tiled = [w for w in windows if w.view.is_aggregated]
    if tiled:  # online tiles (online/tiles.py), recomputed whole from the source
        from banquet.online.tiles import materialize as materialize_tiles

        windows = [w for w in windows if not w.view.is_aggregated]
        done_tiles: list[Window] = []
        try:
            for w in tiled:
                materialize_tiles(store, w.view, w.start_us, w.end_us)
                done_tiles.append(w)
        finally:
            if done_tiles:
                store.online_store.sync()
                record_intervals(store, done_tiles)
        if not windows:
            return
    on_executors = getattr(store.offline_store, "materialize_windows", None)
    if on_executors is not None:  # Spark: reduced and written by the executors
        on_executors(store, windows, progress, overwrite)
        return
    done: list[Window] = []
    with store.online_store.bulk():
        try:
            # the pools start their threads on the first submit: none for a single view
            with (
                ThreadPoolExecutor(1, thread_name_prefix="banquet-read") as reader,
                ThreadPoolExecutor(1, thread_name_prefix="banquet-sync") as syncer,
            ):
                ahead: Future[Winners | SpilledWinners] | None = None
                # with a read-ahead, two views are held at once (one written, the next
                # read): each gets half of memory_limit so that their sum follows it
                share = 2 if len(windows) > 1 else 1
                try:
                    for i, w in enumerate(windows):
                        current = (
                            ahead.result() if ahead is not None else latest_rows(store, w, share)
                        )
                        ahead = None
                        last = i + 1 == len(windows)
                        if not last:
                            ahead = reader.submit(latest_rows, store, windows[i + 1], share)
                        if isinstance(current, SpilledWinners):
                            write_spilled(store, current, progress, overwrite)
                        else:
                            write_winners(store, current, progress, overwrite)
                        done.append(w)
                        if not last:
                            # this view's rows reach the disk while the next is written (the
                            # final sync below then has less to do; it also reports errors)
                            syncer.submit(store.online_store.sync)
                finally:  # a view read ahead but never written: its spill files go too
                    if ahead is not None:
                        pending: Winners | SpilledWinners | None = None
                        with contextlib.suppress(BaseException):
                            pending = ahead.result()
                        if isinstance(pending, SpilledWinners):
                            pending.close()
        finally:
            if done:
                store.online_store.sync()  # durable before the registry says so
                record_intervals(store, done)


def latest_rows(store: FeatureStore, w: Window, share: int = 1) -> Winners | SpilledWinners:
    """Read a view's window from the offline store, keep the latest row per key and encode
    the first batch. A window whose rows pass its budget (``offline_store.memory_limit``
    divided by ``share``, the number of views held at once) is spilled to disk by key
    partition instead (``SpilledWinners``: reduced partition by partition as it is
    written)."""
    view = w.view
    cfg = store.config.offline_store
    free = (getattr(cfg, "memory_limit_bytes", None) or default_memory_limit()) // max(share, 1)
    reader = store.offline_store.scan_view(view, view.features, w.start_us, w.end_us)
    held: list[pa.RecordBatch] = []
    held_bytes = 0
    spilled: SpilledWinners | None = None
    try:
        for batch in reader:
            if spilled is not None:
                spilled.add(batch)
                continue
            held.append(batch)
            held_bytes += batch.nbytes
            if held_bytes > free // 2:
                parent = getattr(cfg, "spill_dir", None)
                spill = SpillDir(str(store.config.resolve(parent)) if parent else None)
                spilled = SpilledWinners(store, w, spill, free)
                for b in held:
                    spilled.add(b)
                held = []
        if spilled is not None:
            spilled.finish()
            return spilled
    except BaseException:
        if spilled is not None:
            spilled.close()
        raise
    finally:
        reader.close()
    table = pa.Table.from_batches(held, schema=reader.schema)
    return reduce_rows(store, w, view_rows(view, table))


def reduce_rows(store: FeatureStore, w: Window, rows: ViewRows) -> Winners:
    """The latest row per key of ``rows`` (all rows of a key are among them), checked, in
    serialized-key order, the first batch encoded."""
    view = w.view
    check_source_times(store, w, rows)
    idx = _core.latest_per_key(rows.keys, rows.event_ts, rows.created_ts, w.start_us, w.end_us)
    # Winners in serialized-key order: stores keyed by a B-tree (SQLite, Postgres) insert
    # sorted keys several times faster than random ones.
    key_bytes = _core.serialize_entity_keys(view.join_keys, [k.take(idx) for k in rows.keys])
    order = _core.key_order(key_bytes)
    win = Winners(w, rows, idx.take(order), key_bytes.take(order))
    if len(win.idx):
        win.first = win.encoded(0)
    return win


class SpilledWinners:
    """A view's window larger than the memory limit: its rows hash-partitioned by key into
    Arrow IPC files (every row of a key in one partition, in source order, so the latest
    row per key of each partition is the view's); the time checks run on every batch
    before anything is written, as on the in-memory path."""

    def __init__(self, store: FeatureStore, w: Window, spill: SpillDir, budget: int) -> None:
        self.store, self.window, self.spill, self.budget = store, w, spill, budget
        self.n_keys = len(w.view.join_keys)
        self.rows = 0
        self._parts: Partitioner | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        view = self.window.view
        rows = view_rows(view, batch)
        check_source_times(self.store, self.window, rows)
        # the typed keys first (what the partition hash reads), then the source columns
        keyed = pa.RecordBatch.from_arrays(
            [*rows.keys, *(flat(c) for c in rows.table.columns)],
            names=[*(f"__key{i}" for i in range(self.n_keys)), *rows.table.column_names],
        )
        if self._parts is None:
            n = FAN_OUT if self.n_keys else 1
            self._parts = Partitioner(
                self.spill,
                view.name,
                keyed.schema,
                self.n_keys,
                n,
                flush_bytes=flush_bytes(self.budget, n),
            )
        self._parts.add(keyed)
        self.rows += batch.num_rows

    def finish(self) -> None:
        if self._parts is not None:
            self._parts.finish()

    def partitions(self) -> Iterator[Winners]:
        """Each partition's winners, read and reduced one partition at a time."""
        if self._parts is None:
            return
        view = self.window.view
        for p in range(self._parts.n):
            table = self._parts.read(p)
            table = table.drop_columns([f"__key{i}" for i in range(self.n_keys)])
            self._parts.paths[p].unlink()  # read: its disk space can go
            if table.num_rows:
                yield reduce_rows(self.store, self.window, view_rows(view, table))

    def close(self) -> None:
        if self._parts is not None:
            self._parts.close()
        self.spill.close()


def write_spilled(
    store: FeatureStore, spilled: SpilledWinners, progress: bool, overwrite: bool = False
) -> int:
    """Write a spilled view partition by partition; returns the number of keys written."""
    n = 0
    try:
        label = f"{spilled.window.view.name} (spilled, by partition)"
        with Progress(label, spilled.rows, enabled=progress) as bar:
            for win in spilled.partitions():
                n += write_winners(store, win, progress=False, overwrite=overwrite)
                bar.advance(len(win.rows.event_ts))
    finally:
        spilled.close()
    return n


def check_source_times(store: FeatureStore, w: Window, rows: ViewRows) -> None:
    """The write-path time checks over the source rows of the window: an unrepresentable or
    too future-dated event time refuses the view's materialization as a whole (writing the
    rest would leave those keys silently stale)."""
    where = f"materialize: feature view {w.view.name!r}: source rows in the window"
    fix = (
        "fix the source data, raise online_store.max_future_skew (null turns the check off), "
        "or materialize with an earlier end"
    )
    written = "Nothing of this view was written"
    skew = max_future_skew_us(store.config)
    try:  # the whole read first (one pass); rows outside the window only when that fails
        check_times(rows.event_ts, rows.created_ts, where, skew, fix_future=fix, written=written)
    except InvalidTimestamp:
        ev = rows.event_ts.cast(pa.int64())
        inside = pc.greater_equal(ev, w.start_us) if w.start_us is not None else None
        upto = pc.less_equal(ev, w.end_us)
        inside = upto if inside is None else pc.and_(inside, upto)  # nulls drop out
        created = rows.created_ts.filter(inside) if rows.created_ts is not None else None
        check_times(
            rows.event_ts.filter(inside), created, where, skew, fix_future=fix, written=written
        )
    for f in w.view.features:  # timestamp features: the range only
        t = f.dtype.to_arrow()
        if pat.is_timestamp(t) or (pat.is_list(t) and pat.is_timestamp(t.value_type)):
            col = rows.table.column(f.name)
            what = f"{where}: column {f.name!r}: time"
            try:
                check_feature_times(col, what, written)
            except InvalidTimestamp:
                ev = rows.event_ts.cast(pa.int64())
                inside = pc.less_equal(ev, w.end_us)
                if w.start_us is not None:
                    inside = pc.and_(inside, pc.greater_equal(ev, w.start_us))
                check_feature_times(flat(col).filter(inside), what, written)


def write_winners(
    store: FeatureStore, win: Winners, progress: bool, overwrite: bool = False
) -> int:
    """Write a view's winners in batches; returns the number of keys written."""
    view, n = win.window.view, len(win.idx)
    with Progress(view.name, n, enabled=progress) as bar:
        if n <= BATCH_ROWS:
            if n:
                write_encoded(store, view, *win.encoded(0), overwrite=overwrite)
                bar.advance(n)
            return n
        # Two stages on two cores: the store write of one batch (Rust, GIL released) runs
        # on a worker while this thread takes and encodes the next. Batches are written in
        # key order, one at a time; an error stops the rest (nothing is recorded then).
        with ThreadPoolExecutor(1, thread_name_prefix="banquet-materialize") as pool:
            pending: Future[None] | None = None
            for lo in range(0, n, BATCH_ROWS):
                encoded = win.encoded(lo)
                if pending is not None:
                    pending.result()
                    bar.advance(BATCH_ROWS)
                pending = pool.submit(write_encoded, store, view, *encoded, overwrite=overwrite)
            if pending is not None:
                pending.result()
                bar.advance(n - (n - 1) // BATCH_ROWS * BATCH_ROWS)
    return n


def write_rows(
    store: FeatureStore,
    view: FeatureView,
    keys: list[pa.Array],
    event_ts: pa.Array,
    created_ts: pa.Array | None,
    features: list[Any],
    *,
    overwrite: bool = False,
) -> None:
    """Encode rows (keys already typed, features in ``view.features`` order) and write them."""
    key_bytes = _core.serialize_entity_keys(view.join_keys, keys)
    encoded = encode_rows(view, key_bytes, event_ts, created_ts, features)
    write_encoded(store, view, *encoded, overwrite=overwrite)


def encode_rows(
    view: FeatureView,
    key_bytes: pa.Array,
    event_ts: pa.Array,
    created_ts: pa.Array | None,
    features: list[Any],
) -> Encoded:
    """``(serialized keys, event times, created times, value blobs)`` ready to write."""
    values = [_as_type(view, f, col) for f, col in zip(view.features, features)]
    blobs = _core.encode_values(event_ts, created_ts, values, view.value_schema())
    return key_bytes, event_ts, created_ts, blobs


def write_encoded(
    store: FeatureStore,
    view: FeatureView,
    key_bytes: pa.Array,
    event_ts: pa.Array,
    created_ts: pa.Array | None,
    blobs: pa.Array,
    *,
    overwrite: bool = False,
) -> None:
    store.online_store.ensure_view(store.project, view)
    batch = rows_batch(key_bytes, event_ts, created_ts, blobs)
    if overwrite:
        store.online_store.write(store.project, view.storage_name, batch, overwrite=True)
    else:  # the plain call: test doubles without the keyword keep working
        store.online_store.write(store.project, view.storage_name, batch)


def _as_type(view: FeatureView, field: Any, col: Any) -> pa.Array:
    col = flat(col)
    if field.dtype.document:  # Map / Json / Struct: stored as JSON text (documents.py)
        from banquet.documents import to_json_text

        return to_json_text(field.dtype, col, f"feature view {view.name!r}: column {field.name!r}")
    target = field.dtype.to_arrow()
    if col.type == target:
        return col
    where = f"feature view {view.name!r}: column {field.name!r}"
    try:
        out = col.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        if out_of_range(e):
            raise ValueOutOfRange(
                f"{where} holds a value out of the range of the declared {field.dtype} "
                f"({' '.join(str(e).split())[:200]}); correct the source or declare a wider "
                "type. Nothing of this view was written"
            ) from None
        raise SchemaMismatch(
            f"feature view {view.name!r}: column {field.name!r} has type {col.type}, which does "
            f"not convert to the declared {field.dtype}"
        ) from None
    check_fits(col, out, where)
    return out


def record_intervals(store: FeatureStore, windows: list[Window]) -> None:
    """Add each window to its view's materialized intervals (merging overlaps), in one
    registry update."""

    def change(state: dict[str, Any]) -> bool:
        for w in windows:
            view = w.view.name
            if view not in state["feature_views"]:
                raise BanquetError(
                    f"feature view {view!r} was removed while it was being materialized"
                )
            if current_storage(state, view) != w.view.storage_name:  # rows went to retired storage
                raise BanquetError(
                    f"feature view {view!r} was changed by an apply while it was being "
                    "materialized; nothing was recorded: run the materialization again"
                )
            ivs = [
                *state["materializations"].get(view, []),
                [w.start_us if w.start_us is not None else 0, w.end_us],
            ]
            ivs.sort()
            merged: list[list[int]] = []
            for lo, hi in ivs:
                if merged and lo <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            state["materializations"][view] = merged
        return True

    store.registry.update(store.project, change)
    # The store's catalog is cached (registry.cache_ttl_seconds): without a refresh the next
    # materialize_incremental in this process would not see these intervals.
    store.refresh_registry()
