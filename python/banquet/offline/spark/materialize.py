"""Materialization on the executors: the latest row per key and the online write happen in the
Spark tasks, straight from each executor to the online store (Redis, Redis Cluster,
Postgres).

Per view: the window's rows are repartitioned by a hash of the join keys, so every key's rows
meet in one task; each task (one ``mapInArrow`` call) puts its rows in source order, runs
``_core.latest_per_key`` (the same tie rules as in-process), serializes and encodes the
winners in Rust, and writes them in batches of ``WRITE_ROWS`` through its own
``OnlineStore`` (opened from the repo config, closed at the end). The write keeps the newer
event on conflict, so a task Spark re-runs (a lost executor, a speculative copy) writes the same
rows again without harm: the job is idempotent by construction. The registry records the
interval only after the job returned, i.e. after every task succeeded; a failed job records
nothing.

Before any task writes, one aggregate over the window checks the event and created times
(the representable range, the future skew) as the in-process path does; a view that fails
is refused whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from banquet.offline.spark import join
from banquet.offline.spark.store import spark_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from banquet.config import RepoConfig
    from banquet.feature_view import FeatureView
    from banquet.materialize import Window
    from banquet.offline.spark.store import SparkOfflineStore
    from banquet.store import FeatureStore

# Rows per online write from a task: the store pipelines each write in waves of script / HSETNX
# calls; a larger batch means fewer write calls (each one HSETNX pass, then a script pass).
WRITE_ROWS = 250_000


def materialize_windows(
    store: FeatureStore, windows: list[Window], progress: bool, overwrite: bool = False
) -> None:
    """Each view in one Spark job; the intervals of the views whose job succeeded are recorded
    together at the end (also when a later view failed)."""
    from banquet.materialize import record_intervals

    done: list[Window] = []
    try:
        for w in windows:
            write_view(store, w, overwrite)
            done.append(w)
    finally:
        if done:
            store.online_store.sync()
            record_intervals(store, done)


def write_view(store: FeatureStore, w: Window, overwrite: bool) -> int:
    """One view's window, reduced and written by the executors; returns the keys written."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StructField, StructType

    offline: SparkOfflineStore = store.offline_store  # type: ignore[assignment]
    view = w.view
    rows = window_rows(offline, view, w.start_us, w.end_us)
    check_times(store, w, rows)
    store.online_store.ensure_view(store.project, view)  # once, before the tasks write
    writer = _partition_writer(store.config, store.project, view, w.start_us, w.end_us, overwrite)
    schema = StructType([StructField("written", LongType(), False)])
    keys = [join.key_name(i) for i in range(len(view.join_keys))]
    job = rows.repartition(*keys).mapInArrow(writer, schema)
    with spark_errors(f"materialize: feature view {view.name!r} on Spark"):
        total = job.agg(F.sum("written")).collect()[0][0]
    return int(total or 0)


def window_rows(
    offline: SparkOfflineStore, view: FeatureView, start_us: int | None, end_us: int
) -> DataFrame:
    """``k0.., TS, CREATED, SEQ, f0..`` of the view's rows with ``start <= ts <= end``."""
    from pyspark.sql import functions as F

    src = offline.frame(view.batch_source)
    source = view.batch_source
    df = src.withColumn(join.SEQ, offline.sequence(src, source.batch))  # type: ignore[arg-type]
    ts = F.col(source.source_column(source.timestamp_field)).cast("timestamp")
    if start_us is not None:
        df = df.where(ts >= join.ts_literal(start_us))
    df = df.where(ts <= join.ts_literal(end_us))
    created = source.created_timestamp_column
    return df.select(
        *(
            F.col(source.source_column(k)).alias(join.key_name(i))
            for i, k in enumerate(view.join_keys)
        ),
        ts.alias(join.TS),
        (
            F.col(source.source_column(created)).cast("timestamp")
            if created
            else F.lit(None).cast("timestamp")
        ).alias(join.CREATED),
        F.col(join.SEQ),
        *(
            F.col(source.source_column(f.name)).alias(join.feature_name(j))
            for j, f in enumerate(view.features)
        ),
    )


def check_times(store: FeatureStore, w: Window, rows: DataFrame) -> None:
    """The write path's time checks over the window's extremes (one aggregate job)."""
    from pyspark.sql import functions as F

    from banquet.write_checks import check_times as check
    from banquet.write_checks import max_future_skew_us

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
    check(
        event,
        created if len(created) else None,
        f"materialize: feature view {w.view.name!r}: source rows in the window",
        max_future_skew_us(store.config),
        fix_future="fix the source data, raise online_store.max_future_skew (null turns the "
        "check off), or materialize with an earlier end",
        written="Nothing of this view was written",
    )


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


def _as_key(col: pa.Array, view: FeatureView, key: str) -> pa.Array:
    """A key column in the join key's declared type (what read_view gives in-process)."""
    dtype = view.key_dtype(key)
    if dtype is None or col.type == dtype.to_arrow():
        return col
    return col.cast(dtype.to_arrow())


def _flat(col: pa.ChunkedArray) -> pa.Array:
    return join._flat(col)
