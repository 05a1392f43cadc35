"""Materialization on the executors: the latest row per key and the online write happen in the
Spark tasks, straight from each executor to the online store (Redis, Redis Cluster,
Postgres).

Per view, one job: each read task (``mapInArrow``) puts its rows in source order and keeps
its latest row per key (``_core.latest_per_key``, the in-process tie rules); only those rows
are repartitioned by a hash of the join keys, so every key's candidates meet in one task,
which puts them in source order again (the source-order number ``SEQ`` travels with each
row), picks the final winners with the same kernel, serializes and encodes them in Rust, and
writes them in batches of ``WRITE_ROWS`` through its own ``OnlineStore`` (opened from the
repo config, closed at the end). The write keeps the newer event on conflict, so a task
Spark re-runs (a lost executor, a speculative copy) writes the same rows again without harm:
the job is idempotent by construction. The registry records the interval only after the job
returned, i.e. after every task succeeded; a failed job records nothing. The views' jobs run
at the same time (a thread each).

Before any task writes, the event and created times of the window are checked (the
representable range, the future skew) as the in-process path does, from the Parquet footers
of a local path source or else by one aggregate job; a view that fails is refused whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from banquet.errors import InvalidTimestamp
from banquet.offline.spark import direct, join
from banquet.offline.spark.store import spark_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from banquet.config import RepoConfig
    from banquet.feature_view import FeatureView
    from banquet.materialize import Window
    from banquet.offline.spark.store import SparkOfflineStore
    from banquet.store import FeatureStore

# Rows per online write from a task: the store pipelines each write in waves of script / HSETNX
# calls; a larger batch means fewer write calls (each one HSETNX pass, then a script pass).
WRITE_ROWS = 250_000
# Source rows per write task of a direct read (the task holds at most their winners).
WRITE_TASK_ROWS = 4_000_000
# Views whose jobs run at the same time (each a driver thread submitting its own jobs).
PARALLEL_VIEWS = 4


def materialize_windows(
    store: FeatureStore, windows: list[Window], progress: bool, overwrite: bool = False
) -> None:
    """The views' jobs run at the same time (one driver thread each, at most ``PARALLEL_VIEWS``):
    a view's read is one task per Parquet row group, so one view alone can leave cores idle.
    The intervals of the views whose job succeeded are recorded together at the end (also when
    another view failed); the first failure is then raised."""
    from concurrent.futures import ThreadPoolExecutor

    from banquet.materialize import record_intervals

    offline: SparkOfflineStore = store.offline_store  # type: ignore[assignment]
    offline.spark  # noqa: B018 -- the session, started once, before the threads
    for w in windows:  # once per view, before any task writes
        store.online_store.ensure_view(store.project, w.view)
    done: list[Window] = []
    failure: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_VIEWS, len(windows)))) as pool:
        futures = [pool.submit(write_view, store, w, overwrite) for w in windows]
        for w, fut in zip(windows, futures):
            try:
                fut.result()
                done.append(w)
            except BaseException as e:  # noqa: BLE001 -- re-raised below, after recording
                failure = failure or e
    if done:
        store.online_store.sync()
        record_intervals(store, done)
    if failure is not None:
        raise failure


def write_view(store: FeatureStore, w: Window, overwrite: bool) -> int:
    """One view's window, reduced and written by the executors; returns the keys written.

    Each read task keeps its rows' latest per key (``_keep_latest``); only those rows are
    repartitioned by key, and each task of the shuffle picks the final winners and writes
    them (``_partition_writer``). A local Parquet path source is read by the tasks with
    pyarrow (``direct.py``), anything else by Spark; a direct read of one task writes its
    winners itself (no shuffle: it saw every row)."""
    from pyspark.sql.types import LongType, StructField, StructType

    offline: SparkOfflineStore = store.offline_store  # type: ignore[assignment]
    view = w.view
    src = offline.frame(view.batch_source)
    files = direct.footers(offline, view, src)
    rows = window_rows(offline, view, w.start_us, w.end_us, src, numbered=files is None)
    check_times(store, w, rows, files.times if files is not None else None)
    has_created = bool(view.batch_source.created_timestamp_column)
    keep = _keep_latest(view, w.start_us, w.end_us, has_created)
    target = arrow_schema(offline, rows.schema)
    writer = _partition_writer(store.config, store.project, view, w.start_us, w.end_us, overwrite)
    out = StructType([StructField("written", LongType(), False)])
    keys = [join.key_name(i) for i in range(len(view.join_keys))]
    if files is not None and not direct.readable(view, files, target):
        rows = window_rows(offline, view, w.start_us, w.end_us, src)  # numbered after all
        files = None
    if files is not None:
        plan = direct.plan(offline, files)
        if not plan:  # no row groups: no rows
            return 0
        if len(plan) == 1:  # one task saw every row: its winners are final
            job = direct.read_frame(offline, view, plan, out, target, keep, writer)
        else:
            reduced = direct.read_frame(offline, view, plan, rows.schema, target, keep)
            # the reduced rows are at most the source's: a write task per 4M of them, at
            # least one per core (not spark.sql.shuffle.partitions tasks, each connecting)
            cores = offline.spark.sparkContext.defaultParallelism
            parts = max(cores, -(-files.rows // WRITE_TASK_ROWS))
            job = reduced.repartition(parts, *keys).mapInArrow(writer, out)
    else:
        reduced = rows.mapInArrow(_local_latest(keep), rows.schema)
        job = reduced.repartition(*keys).mapInArrow(writer, out)
    with spark_errors(f"materialize: feature view {view.name!r} on Spark"):
        # each task's count, summed here (an aggregate would add a stage)
        return sum(int(r[0]) for r in job.collect())


def arrow_schema(offline: SparkOfflineStore, schema: StructType) -> pa.Schema:
    """The Arrow types Spark hands a ``mapInArrow`` task for ``schema`` (and checks coming
    back)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    large = offline.spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")
    return to_arrow_schema(schema, timezone="UTC", prefers_large_types=large == "true")


def window_rows(
    offline: SparkOfflineStore,
    view: FeatureView,
    start_us: int | None,
    end_us: int,
    src: DataFrame | None = None,
    numbered: bool = True,
) -> DataFrame:
    """``k0.., TS, CREATED, SEQ, f0..`` of the view's rows with ``start <= ts <= end``
    (``src``: the source's frame, if already made; without ``numbered`` ``SEQ`` is 0: only
    the schema or the times are used)."""
    from pyspark.sql import functions as F

    source = view.batch_source
    if src is None:
        src = offline.frame(source)
    seq = offline.sequence(src, source) if numbered else F.lit(0).cast("long")  # type: ignore[arg-type]
    return join.feature_rows(
        src,
        source,  # type: ignore[arg-type]
        view.join_keys,
        [f.name for f in view.features],
        seq,
        start_us,
        end_us,
    )


def check_times(
    store: FeatureStore,
    w: Window,
    rows: DataFrame,
    bounds: tuple[pa.Array, pa.Array | None] | None,
) -> None:
    """The write path's time checks over the window's extremes. A local Parquet source's
    footers (``bounds``) bound them without a job (the window's rows are among the files'
    rows, so bounds that pass prove the window passes); otherwise, or when the bounds fail,
    one aggregate job finds the window's exact extremes."""
    from pyspark.sql import functions as F

    if bounds is not None:
        try:
            _check(store, w, *bounds)
            return
        except InvalidTimestamp:
            pass  # maybe rows outside the window: the exact check decides
    with spark_errors(f"materialize: feature view {w.view.name!r}: checking times"):
        ext = rows.agg(
            F.min(join.TS).alias("a"),
            F.max(join.TS).alias("b"),
            F.min(join.CREATED).alias("c"),
            F.max(join.CREATED).alias("d"),
        ).toArrow()
    utc = pa.timestamp("us", tz="UTC")
    event = pa.array([v for v in (ext["a"][0].as_py(), ext["b"][0].as_py()) if v], utc)
    created = pa.array([v for v in (ext["c"][0].as_py(), ext["d"][0].as_py()) if v], utc)
    _check(store, w, event, created if len(created) else None)


def _check(store: FeatureStore, w: Window, event: pa.Array, created: pa.Array | None) -> None:
    from banquet.write_checks import check_times as check
    from banquet.write_checks import max_future_skew_us

    check(
        event,
        created,
        f"materialize: feature view {w.view.name!r}: source rows in the window",
        max_future_skew_us(store.config),
        fix_future="fix the source data, raise online_store.max_future_skew (null turns the "
        "check off), or materialize with an earlier end",
        written="Nothing of this view was written",
    )


def footer_times(
    offline: SparkOfflineStore, view: FeatureView
) -> tuple[pa.Array, pa.Array | None] | None:
    """The least and greatest event and created times of a Parquet ``path`` source on the
    local file system, from its footers' statistics (no rows read); None when they cannot
    tell (another kind of source or file system, a column without statistics, times not
    stored as INT64 timestamps)."""
    files = direct.footers(offline, view, offline.frame(view.batch_source))
    return files.times if files is not None else None


def _partition_writer(
    config: RepoConfig,
    project: str,
    view: FeatureView,
    start_us: int | None,
    end_us: int,
    overwrite: bool,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each task runs (pickled to the executors with the config and view)."""
    nfeatures = len(view.features)

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        from banquet import _core
        from banquet.materialize import encode_rows
        from banquet.online import open_online_store
        from banquet.online.base import rows_batch

        got = list(batches)
        table = pa.Table.from_batches(got) if got else None
        del got
        written = 0
        if table is not None and table.num_rows:
            # source order through one permutation: only the key and time columns are taken
            # in it; the features are taken once, at the winners' original positions
            perm = pc.sort_indices(table.column(join.SEQ))
            keys = [
                _as_key(_flat(table.column(join.key_name(i))).take(perm), view, k)
                for i, k in enumerate(view.join_keys)
            ]
            ev = _flat(table.column(join.TS)).take(perm)
            cr = (
                _flat(table.column(join.CREATED)).take(perm)
                if view.batch_source.created_timestamp_column
                else None
            )
            idx = _core.latest_per_key(keys, ev, cr, start_us, end_us)
            key_bytes = _core.serialize_entity_keys(view.join_keys, [k.take(idx) for k in keys])
            order = _core.key_order(key_bytes)
            idx, key_bytes = idx.take(order), key_bytes.take(order)
            at = perm.take(idx)  # the winners' rows in the task's table
            ev, cr = ev.take(idx), cr.take(idx) if cr is not None else None
            feats = [_flat(table.column(join.feature_name(j))) for j in range(nfeatures)]
            online = open_online_store(config)
            try:
                for lo in range(0, len(idx), WRITE_ROWS):
                    rows = at.slice(lo, WRITE_ROWS)
                    enc = encode_rows(
                        view,
                        key_bytes.slice(lo, WRITE_ROWS),
                        ev.slice(lo, WRITE_ROWS),
                        cr.slice(lo, WRITE_ROWS) if cr is not None else None,
                        [f.take(rows) for f in feats],
                    )
                    batch = rows_batch(*enc)
                    if overwrite:
                        online.write(project, view.storage_name, batch, overwrite=True)
                    else:
                        online.write(project, view.storage_name, batch)
                    written += len(rows)
            finally:
                online.close()
        yield pa.RecordBatch.from_arrays([pa.array([written], pa.int64())], names=["written"])

    return write


def _keep_latest(
    view: FeatureView, start_us: int | None, end_us: int, has_created: bool
) -> Callable[[pa.Table], pa.Table]:
    """A read task's reduction: its rows put in source order, its latest row per key
    (``_core.latest_per_key``) kept whole (``SEQ`` too). The pick after the shuffle sees each
    key's local winners in source order again, so it chooses what one pick over all the rows
    would: the kernel's order (event, created, row index) is total, and the latest of the
    tasks' latest rows is the latest row."""

    def keep(table: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        from banquet import _core

        perm = pc.sort_indices(table.column(join.SEQ))
        keys = [
            _as_key(_flat(table.column(join.key_name(i))).take(perm), view, k)
            for i, k in enumerate(view.join_keys)
        ]
        ev = _flat(table.column(join.TS)).take(perm)
        cr = _flat(table.column(join.CREATED)).take(perm) if has_created else None
        idx = _core.latest_per_key(keys, ev, cr, start_us, end_us)
        return table.take(perm.take(idx))

    return keep


def _local_latest(
    keep: Callable[[pa.Table], pa.Table],
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The JVM read tasks' function: ``keep`` over the task's rows."""

    def reduce(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        got = list(batches)
        if not got or not sum(b.num_rows for b in got):
            return
        table = pa.Table.from_batches(got)
        del got
        kept = keep(table).combine_chunks()
        yield from kept.to_batches(max_chunksize=join.BATCH_ROWS)

    return reduce


def _as_key(col: pa.Array, view: FeatureView, key: str) -> pa.Array:
    """A key column in the join key's declared type (what read_view gives in-process)."""
    dtype = view.key_dtype(key)
    if dtype is None or col.type == dtype.to_arrow():
        return col
    return col.cast(dtype.to_arrow())


def _flat(col: pa.ChunkedArray) -> pa.Array:
    return join._flat(col)
