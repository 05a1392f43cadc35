"""Materialization's read of a local Parquet ``path`` source without the JVM.

Spark reading Parquet decodes every row in the JVM and then converts it to Arrow for the
Python task (the bulk of a materialization's CPU: JIT, decode, conversion). A source that is
Parquet on the local file system (``file:``; on a real cluster, a mount every executor sees
at the same path) is instead read by the tasks themselves: the driver reads the footers once
(the same pass bounds the window's times for the write checks), cuts the files' row groups
into read tasks the way Spark cuts files (``spark.sql.files.maxPartitionBytes``,
``openCostInBytes``, the cores), and each task of a ``spark.range`` (one id per task) reads
its row groups with pyarrow (projected to the view's columns, C++ decode, no JVM) and keeps
its latest row per key, as the JVM read's tasks do. Source order is the file's rank (paths
sorted) << 40 | the row in the file, as ``SparkOfflineStore.sequence`` numbers it.

Anything this cannot read exactly as Spark would (a column only in the folder names of a
hive layout, a file lacking a column, a timestamp column that is not a timestamp of unit s,
ms or µs, a nested or nanosecond column, a type Spark reads differently) falls back to the
JVM read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from banquet.offline.spark import join

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from banquet.feature_view import FeatureView
    from banquet.offline.spark.store import SparkOfflineStore

_SCALE = {"s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass(frozen=True)
class Unit:
    """One row group: its file (local path, rank in path order), index, first row in the
    file, rows and bytes (compressed, as stored)."""

    path: str
    rank: int
    group: int
    first_row: int
    rows: int
    size: int


@dataclass
class Footers:
    """A local Parquet path source's files, read once on the driver: the row groups, and the
    least / greatest value of the event and created time columns by the statistics (None:
    the statistics cannot tell)."""

    units: list[Unit]
    schemas: list[pa.Schema]  # per file, by rank
    times: tuple[pa.Array, pa.Array | None] | None

    @property
    def rows(self) -> int:
        return sum(u.rows for u in self.units)


def footers(offline: SparkOfflineStore, view: FeatureView, frame: DataFrame) -> Footers | None:
    """The footers of a Parquet ``path`` source on the local file system (``frame``: its
    Spark frame, for the file list); None for another kind of source or file system, or an
    unreadable footer."""
    from urllib.parse import unquote, urlparse

    import pyarrow.parquet as pq

    from banquet.offline.spark.source import SparkSource

    src = view.batch_source
    if not isinstance(src, SparkSource) or not src.path or src.file_format != "parquet":
        return None
    try:
        files = frame.inputFiles()
    except Exception:  # noqa: BLE001 -- the JVM read will say what is wrong
        return None
    if not files or not all(f.startswith("file:") for f in files):
        return None
    paths = sorted(unquote(urlparse(f).path) for f in files)
    names = [src.source_column(src.timestamp_field)]
    if src.created_timestamp_column:
        names.append(src.source_column(src.created_timestamp_column))
    lo: list[int | None] = [None] * len(names)
    hi: list[int | None] = [None] * len(names)
    known = True
    units: list[Unit] = []
    schemas: list[pa.Schema] = []
    try:
        for rank, path in enumerate(paths):
            pf = pq.ParquetFile(path)
            md, schema = pf.metadata, pf.schema_arrow
            schemas.append(schema)
            first = 0
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                size = sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
                units.append(Unit(path, rank, g, first, rg.num_rows, size))
                first += rg.num_rows
            for n, name in enumerate(names):
                if not known:
                    break
                i = schema.get_field_index(name)
                if i < 0 or not pa.types.is_timestamp(schema.field(i).type):
                    known = False
                    break
                unit = schema.field(i).type.unit
                if unit not in _SCALE:  # ns: Spark reads it as µs, truncated; rare: exact job
                    known = False
                    break
                col = next(
                    (j for j in range(md.num_columns) if md.schema.column(j).path == name), None
                )
                if col is None:
                    known = False
                    break
                for g in range(md.num_row_groups):
                    rg = md.row_group(g)
                    st = rg.column(col).statistics
                    if rg.column(col).physical_type != "INT64" or st is None:
                        known = False
                        break
                    if not st.has_min_max:
                        if st.null_count == rg.num_rows:
                            continue  # all null
                        known = False
                        break
                    a, b = int(st.min_raw) * _SCALE[unit], int(st.max_raw) * _SCALE[unit]
                    lo[n] = a if lo[n] is None else min(lo[n], a)  # type: ignore[type-var]
                    hi[n] = b if hi[n] is None else max(hi[n], b)  # type: ignore[type-var]
    except Exception:  # noqa: BLE001 -- an unreadable footer: the JVM read decides
        return None
    times = None
    if known:
        utc = pa.timestamp("us", tz="UTC")

        def arr(n: int) -> pa.Array:
            return pa.array([v for v in (lo[n], hi[n]) if v is not None], pa.int64()).cast(utc)

        times = arr(0), (arr(1) if len(names) > 1 and len(arr(1)) else None)
    return Footers(units, schemas, times)


def source_columns(view: FeatureView) -> list[str]:
    """The file columns of ``window_rows``' output, in its order: keys, event time, created
    time (if any), features."""
    src = view.batch_source
    cols = [src.source_column(k) for k in view.join_keys]
    cols.append(src.source_column(src.timestamp_field))
    if src.created_timestamp_column:
        cols.append(src.source_column(src.created_timestamp_column))
    return cols + [src.source_column(f.name) for f in view.features]


def readable(view: FeatureView, f: Footers, target: pa.Schema) -> bool:
    """Whether every file holds the view's columns in types this read turns into exactly the
    Arrow types Spark's read would hand over (``target``: the JVM read's schema)."""
    cols = source_columns(view)
    names, types = _layout(target, bool(view.batch_source.created_timestamp_column))
    times = {join.TS, join.CREATED}
    for schema in f.schemas:
        for col, name, want in zip(cols, names, types, strict=True):
            i = schema.get_field_index(col)
            if i < 0:
                return False  # a hive folder column, or a file without it
            have = schema.field(i).type
            if name in times:
                if not pa.types.is_timestamp(have) or have.unit not in _SCALE:
                    return False
            elif not _same_values(have, want):
                return False
    return True


def _layout(target: pa.Schema, has_created: bool) -> tuple[list[str], list[pa.DataType]]:
    """The names and types ``source_columns`` become: ``target``'s but ``SEQ`` (numbered
    here) and, without a created column, ``CREATED`` (all null)."""
    skip = {join.SEQ} if has_created else {join.SEQ, join.CREATED}
    fields = [fl for fl in target if fl.name not in skip]
    return [fl.name for fl in fields], [fl.type for fl in fields]


def _same_values(have: pa.DataType, want: pa.DataType) -> bool:
    """A cast from the file's type to Spark's Arrow type keeps every value as Spark reads it:
    the same type, or a widening of integers / strings / binaries, or a timestamp of another
    unit (s, ms) into µs."""
    t = pa.types
    if have == want:
        return True
    if t.is_integer(have) and t.is_integer(want):
        return bool(
            have.bit_width < want.bit_width
            or (
                have.bit_width == want.bit_width
                and t.is_signed_integer(have) == t.is_signed_integer(want)
            )
        )
    if (t.is_string(have) or t.is_large_string(have)) and (
        t.is_string(want) or t.is_large_string(want)
    ):
        return True
    if (t.is_binary(have) or t.is_large_binary(have)) and (
        t.is_binary(want) or t.is_large_binary(want)
    ):
        return True
    if t.is_timestamp(have) and t.is_timestamp(want):
        return have.unit in _SCALE and want.unit == "us"
    return False


def tasks(f: Footers, max_split: int, open_cost: int, cores: int) -> list[list[Unit]]:
    """Row groups cut into read tasks as Spark packs file splits: a task takes consecutive
    row groups while its bytes so far plus the next one's stay within ``min(max_split,
    max(open_cost, (bytes + files * open_cost) / cores))``, each file counting ``open_cost``
    more when the task starts reading it. Each task reads a run in source order."""
    files = len({u.rank for u in f.units})
    total = sum(u.size for u in f.units) + files * open_cost
    cap = max(1, min(max_split, max(open_cost, math.ceil(total / max(1, cores)))))
    out: list[list[Unit]] = []
    size = 0
    for u in f.units:
        if not out or (out[-1] and size + u.size > cap):
            out.append([])
            size = 0
        if not out[-1] or out[-1][-1].rank != u.rank:
            size += open_cost
        out[-1].append(u)
        size += u.size
    return out


def plan(offline: SparkOfflineStore, f: Footers) -> list[list[Unit]]:
    """``f``'s row groups cut into read tasks by the session's file-split settings."""
    spark = offline.spark
    conf = spark.conf
    max_split = _bytes(conf.get("spark.sql.files.maxPartitionBytes", "128m") or "128m")
    open_cost = _bytes(conf.get("spark.sql.files.openCostInBytes", "4m") or "4m")
    return tasks(f, max_split, open_cost, spark.sparkContext.defaultParallelism)


def read_frame(
    offline: SparkOfflineStore,
    view: FeatureView,
    parts: list[list[Unit]],
    schema: StructType,
    target: pa.Schema,
    reduce: Callable[[pa.Table], pa.Table],
    then: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]] | None = None,
) -> DataFrame:
    """The window's rows reduced per read task (``reduce``: rows in source order -> the rows
    to keep, in the JVM read's Arrow types ``target``), one task per entry of ``parts`` (a
    ``spark.range`` id each); ``then`` (the task's reduced batches -> its output of
    ``schema``) runs in the same task, else the output is the reduced rows (``schema``: the
    JVM read's)."""
    has_created = bool(view.batch_source.created_timestamp_column)
    read = _reader(parts, source_columns(view), target, has_created, reduce)
    fn = read if then is None else _chain(read, then)
    ids = offline.spark.range(0, len(parts), 1, numPartitions=len(parts))
    return ids.mapInArrow(fn, schema)


def _chain(
    first: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
    then: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    def both(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return then(first(batches))

    return both


def _reader(
    parts: list[list[Unit]],
    cols: list[str],
    target: pa.Schema,
    has_created: bool,
    reduce: Callable[[pa.Table], pa.Table],
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The read tasks' function (pickled with the task list)."""
    _, types = _layout(target, has_created)
    at, seq_at = target.get_field_index(join.CREATED), target.get_field_index(join.SEQ)
    created = target.field(join.CREATED).type

    def read(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np
        import pyarrow.parquet as pq

        wanted = list(dict.fromkeys(cols))
        opened: dict[str, pq.ParquetFile] = {}
        for b in batches:
            for task in b.column(0).to_pylist():
                # each row group reduced as it is read, then the survivors together: the
                # task holds one row group's rows at a time (the two-step pick is exact)
                kept: list[pa.Table] = []
                for u in parts[task]:
                    if u.path not in opened:
                        opened[u.path] = pq.ParquetFile(u.path)
                    t = opened[u.path].read_row_group(u.group, columns=wanted)
                    arrays = [t.column(c).cast(ty) for c, ty in zip(cols, types, strict=True)]
                    seq = (u.rank << 40) + u.first_row + np.arange(t.num_rows, dtype=np.int64)
                    if not has_created:  # CREATED all null
                        arrays.insert(at, pa.chunked_array([pa.nulls(t.num_rows, created)]))
                    arrays.insert(seq_at, pa.chunked_array([pa.array(seq, pa.int64())]))
                    del t
                    kept.append(reduce(pa.table(arrays, names=target.names)))
                table = reduce(pa.concat_tables(kept)) if len(kept) > 1 else kept[0]
                yield from table.combine_chunks().to_batches(max_chunksize=join.BATCH_ROWS)

    return read


def _bytes(text: str) -> int:
    """A Spark size setting (``128m``, ``4194304``, ``1g``...) in bytes."""
    s = text.strip().lower().removesuffix("b")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(s[-1:], 1)
    return int(float(s[:-1] if mult > 1 else s) * mult)
