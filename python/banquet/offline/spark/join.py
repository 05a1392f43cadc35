"""The point-in-time join of one feature view on Spark.

Entity rows (a row id, the join keys, the timestamp) and feature rows (the join keys, the
event and created timestamps, a source-order sequence number, the features) are unioned
with a side tag and repartitioned by a hash of the join keys (``spark.sql.shuffle.partitions``
partitions, which adaptive execution may coalesce), so every key's rows of both sides meet in
one partition. Each partition is then one ``mapInArrow`` call: its Arrow batches are
concatenated, split by side, the feature rows put in source order (``sort_indices`` on the
sequence number: the last of fully tied rows wins, as in the file store), and the Rust kernel
``asof_join`` (GIL released) picks each entity row's feature row; ``take`` gathers the
features. No Python runs per row. Out comes ``(row id, features...)``, one row per entity row.

Hot keys (``hot_buckets``): a key holding far more rows than one task should is split by
time, not salted (salting would copy the key's feature rows into every salt): its rows are
cut into time buckets, each bucket joined in a partition of its own against the key's
feature rows inside the bucket plus the one row that wins just before the bucket starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from banquet.offline.spark.source import SparkSource

ROW = "__banquet_row"
SIDE = "__banquet_side"
SEQ = "__banquet_seq"
TS = "__banquet_ts"
CREATED = "__banquet_created"
BUCKET = "__banquet_bucket"
BATCH_ROWS = 65_536  # rows per Arrow batch handed back to Spark


def key_name(i: int) -> str:
    return f"__banquet_k{i}"


def feature_name(j: int) -> str:
    return f"__banquet_f{j}"


def require_columns(df: DataFrame, src: SparkSource, fields: Iterable[str], where: str) -> None:
    """Raise ``SourceColumnMissing`` unless ``df`` (``src``'s rows) has the source column of
    every name in ``fields`` (keys, timestamp, features) and ``src``'s created column: before
    any job, so a missing column is named, not a Spark analysis error."""
    from banquet.errors import SourceColumnMissing

    needed = [src.source_column(n) for n in fields]
    if src.created_timestamp_column:
        needed.append(src.source_column(src.created_timestamp_column))
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        raise SourceColumnMissing(
            f"{where}: {src.describe()} has no column {missing[0]!r}; its columns are "
            f"{sorted(df.columns)}"
        )


def join_view(
    entity: DataFrame,
    features: DataFrame,
    nkeys: int,
    nfeatures: int,
    ttl_us: int | None,
    has_created: bool,
    hot_buckets: DataFrame | None = None,
    partitions: int | None = None,
) -> DataFrame:
    """``entity``: ``ROW, k0.., TS``; ``features``: ``k0.., TS, CREATED, SEQ, f0..``, keys of
    the same Spark types on both sides. Returns ``ROW, f0..`` (one row per entity row).

    ``hot_buckets`` (``k0.., BUCKET, lo, hi``): for hot keys, time buckets ``[lo, hi)``;
    entity rows of a hot key go to the bucket holding their time, feature rows to the bucket
    holding theirs, and each bucket also gets the winning row before ``lo``."""
    from pyspark.sql import functions as F

    keys = [key_name(i) for i in range(nkeys)]
    feats = [feature_name(j) for j in range(nfeatures)]
    fschema = features.schema
    ent = entity.select(
        F.lit(0).cast("byte").alias(SIDE),
        F.col(ROW),
        *keys,
        F.col(TS),
        F.lit(None).cast("timestamp").alias(CREATED),
        F.lit(None).cast("long").alias(SEQ),
        *(F.lit(None).cast(fschema[f].dataType).alias(f) for f in feats),
    )
    feat = features.select(
        F.lit(1).cast("byte").alias(SIDE),
        F.lit(None).cast("long").alias(ROW),
        *keys,
        F.col(TS),
        F.col(CREATED),
        F.col(SEQ),
        *feats,
    )
    if hot_buckets is not None:
        ent, feat = _split_hot(ent, feat, keys, hot_buckets)
        part_cols = [*keys, BUCKET]
    else:
        part_cols = keys
    both = ent.unionByName(feat)
    both = both.repartition(partitions, *part_cols) if partitions else both.repartition(*part_cols)
    if hot_buckets is not None:
        both = both.drop(BUCKET)  # after the repartition: it only spread the rows
    out_schema = entity.select(ROW).schema
    for f in feats:
        out_schema = out_schema.add(fschema[f])
    return both.mapInArrow(_partition_joiner(keys, feats, ttl_us, has_created), out_schema)


def _split_hot(
    ent: DataFrame, feat: DataFrame, keys: list[str], buckets: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """Give every row a ``BUCKET`` (0 for keys that are not hot; for a hot key the bucket whose
    ``[lo, hi)`` holds its time, a null time going to the first) and add to each hot bucket
    the key's winning feature row before the bucket's start: the only older row that can
    still match (any other ranks below it and is older, so it is out of ttl whenever the
    winner is)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    b = F.broadcast(buckets.select(*keys, BUCKET, "lo", "hi"))
    ts, lo, hi = F.col(TS), F.col("lo"), F.col("hi")
    inside = (lo.isNull() | (ts >= lo)) & (hi.isNull() | (ts < hi))
    keep = F.col(BUCKET).isNull() | F.when(ts.isNull(), lo.isNull()).otherwise(inside)

    def bucketed(df: DataFrame) -> DataFrame:
        j = df.join(b, on=keys, how="left").where(keep)
        return j.withColumn(BUCKET, F.coalesce(F.col(BUCKET), F.lit(0))).drop("lo", "hi")

    e, f = bucketed(ent), bucketed(feat)
    hot_keys = buckets.select(*keys).distinct()
    rank = F.struct(
        F.col(TS),
        F.col(CREATED).isNotNull(),
        F.coalesce(F.col(CREATED), F.timestamp_micros(F.lit(0))),
        F.col(SEQ),
    )
    # each hot bucket's own winner (a row per key and bucket), then for bucket j the best
    # winner of the buckets before it
    per_bucket = Window.partitionBy(*keys, BUCKET).orderBy(rank.desc())
    winners = (
        f.join(F.broadcast(hot_keys), on=keys, how="left_semi")
        .where(F.col(TS).isNotNull())
        .withColumn("__n", F.row_number().over(per_bucket))
        .where(F.col("__n") == 1)
        .drop("__n")
        .withColumn("__rank", rank)
    )
    later = buckets.select(*keys, F.col(BUCKET).alias("__to"))
    best = Window.partitionBy(*keys, "__to").orderBy(F.col("__rank").desc())
    carry = (
        winners.join(F.broadcast(later), on=keys)
        .where(F.col(BUCKET) < F.col("__to"))
        .withColumn("__n", F.row_number().over(best))
        .where(F.col("__n") == 1)
        .withColumn(BUCKET, F.col("__to"))
        .select(*f.columns)
    )
    return e, f.unionByName(carry)


def hot_key_buckets(features: DataFrame, nkeys: int, hot_rows: int) -> DataFrame | None:
    """Time buckets for the keys with about ``hot_rows`` feature rows or more, or None when
    there are none: ``k0.., BUCKET, lo, hi``, ``ceil(rows / (hot_rows / 2))`` buckets a key
    (at most ``MAX_BUCKETS``), cut at approximate quantiles of its times. Counted on a sample
    (about 5,000 rows per ``hot_rows``) so the extra pass reads the keys and times only."""
    import math

    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StructField, StructType, TimestampType

    keys = [key_name(i) for i in range(nkeys)]
    fraction = min(1.0, 5000 / max(hot_rows, 1))
    sample = features.select(*keys, TS)
    if fraction < 1.0:
        sample = sample.sample(fraction=fraction, seed=17)
    # not cached: usually no key is hot and this one job is all (caching the sample cost
    # an extra pass); the quantiles below sample again (the same seed: the same rows, and
    # the cuts only need to be roughly right)
    counts = sample.groupBy(*keys).count().where(F.col("count") >= hot_rows * fraction).collect()
    if not counts:
        return None
    hot = features.sparkSession.createDataFrame(
        [tuple(r[k] for k in keys) for r in counts], features.select(*keys).schema
    )
    grid = [i / MAX_BUCKETS for i in range(1, MAX_BUCKETS)]
    cuts = (
        sample.join(F.broadcast(hot), on=keys, how="left_semi")
        .groupBy(*keys)
        .agg(F.percentile_approx(TS, grid, 1000).alias("q"))
        .collect()
    )
    n_of = {tuple(r[k] for k in keys): r["count"] / fraction for r in counts}
    rows = []
    for r in cuts:
        key = tuple(r[k] for k in keys)
        n = max(2, min(MAX_BUCKETS, math.ceil(n_of.get(key, 0) / max(hot_rows // 2, 1))))
        q = [t for t in (r["q"] or []) if t is not None]
        points = sorted({q[round(i * len(q) / n) - 1] for i in range(1, n)} if q else set())
        bounds = [None, *points, None]
        rows += [(*key, b, bounds[b], bounds[b + 1]) for b in range(len(bounds) - 1)]
    schema = StructType(
        [*features.select(*keys).schema.fields]
        + [
            StructField(BUCKET, IntegerType(), False),
            StructField("lo", TimestampType(), True),
            StructField("hi", TimestampType(), True),
        ]
    )
    return features.sparkSession.createDataFrame(rows, schema)


MAX_BUCKETS = 64


def _partition_joiner(
    keys: list[str], feats: list[str], ttl_us: int | None, has_created: bool
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each partition runs (pickled to the executors: plain values only)."""

    def join(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from banquet import _core

        sides = partition_sides(batches)
        if sides is None:
            return
        ent, feat = sides
        # the same per-partition kernel as the file store's partitioned join
        entity = pa.RecordBatch.from_arrays(
            [_flat(ent.column(c)) for c in (*keys, TS, ROW)], names=[*keys, TS, ROW]
        )
        cols = [*keys, TS, *([CREATED] if has_created else []), *feats]
        feature = pa.RecordBatch.from_arrays([_flat(feat.column(c)) for c in cols], names=cols)
        out = _core.join_partition(entity, feature, len(keys), has_created, ttl_us)
        yield from in_batches(pa.RecordBatch.from_arrays(out.columns, names=[ROW, *feats]))

    return join


def partition_sides(batches: Iterator[pa.RecordBatch]) -> tuple[pa.Table, pa.Table] | None:
    """A partition's entity rows and its feature rows, these in source order (the kernels'
    last tie-break is the row order: the last of fully tied rows wins); None when the
    partition holds no entity row."""
    import pyarrow.compute as pc

    got = list(batches)
    if not got:
        return None
    table = pa.Table.from_batches(got)
    del got
    is_entity = pc.equal(table.column(SIDE), 0)
    ent = table.filter(is_entity)
    if ent.num_rows == 0:
        return None
    feat = table.filter(pc.invert(is_entity))
    if feat.num_rows > 1:
        feat = feat.take(pc.sort_indices(feat.column(SEQ)))
    return ent, feat


def in_batches(out: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """``out`` in slices of ``BATCH_ROWS`` rows, as batches go back to Spark."""
    for start in range(0, out.num_rows, BATCH_ROWS):
        yield out.slice(start, BATCH_ROWS)


def _flat(col: pa.ChunkedArray) -> pa.Array:
    if col.num_chunks == 1:
        return col.chunk(0)
    return col.combine_chunks() if col.num_chunks else pa.array([], col.type)


def ts_literal(us: int) -> Column:
    from pyspark.sql import functions as F

    return F.timestamp_micros(F.lit(int(us)))


def feature_rows(
    df: DataFrame,
    src: SparkSource,
    join_keys: list[str],
    features: list[str],
    seq: Column,
    lo: int | None,
    hi: int | None,
    key_types: list[Any] | None = None,
    name: Callable[[int], str] = feature_name,
) -> DataFrame:
    """``k0.., TS, CREATED, SEQ, f0..`` of ``df`` (``src``'s rows; ``features``: field names,
    read through the field mapping, named ``name(j)``) with ``lo <= event time <= hi`` (None:
    unbounded); ``seq`` numbers the rows in source order; the keys cast to ``key_types``
    (Spark types) when given. The one shape the join, the windowed aggregation and
    materialization read."""
    from pyspark.sql import functions as F

    df = df.withColumn(SEQ, seq)
    ts = F.col(src.source_column(src.timestamp_field)).cast("timestamp")
    if lo is not None:
        df = df.where(ts >= ts_literal(lo))
    if hi is not None:
        df = df.where(ts <= ts_literal(hi))
    keys = [F.col(src.source_column(k)) for k in join_keys]
    if key_types is not None:
        keys = [k.cast(t) for k, t in zip(keys, key_types, strict=True)]
    created = src.created_timestamp_column
    return df.select(
        *(k.alias(key_name(i)) for i, k in enumerate(keys)),
        ts.alias(TS),
        (
            F.col(src.source_column(created)).cast("timestamp")
            if created
            else F.lit(None).cast("timestamp")
        ).alias(CREATED),
        F.col(SEQ),
        *(F.col(src.source_column(f)).alias(name(j)) for j, f in enumerate(features)),
    )
