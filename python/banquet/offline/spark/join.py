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

Hot keys: a key holding far more rows than a partition should hold is split by time (see
``hot_keys.py``-free note in ARCHITECTURE.md "Spark"): its entity rows are cut into time
buckets, each bucket joined in its own partition against the key's feature rows inside the
bucket plus the one row that wins just before the bucket starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

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


def join_view(
    entity: DataFrame,
    features: DataFrame,
    nkeys: int,
    nfeatures: int,
    ttl_us: int | None,
    has_created: bool,
    hot_buckets: DataFrame | None = None,
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
    both = ent.unionByName(feat).repartition(*part_cols)
    if hot_buckets is not None:
        both = both.drop(BUCKET)
    out_schema = entity.select(ROW).schema
    for f in feats:
        out_schema = out_schema.add(fschema[f])
    return both.mapInArrow(_partition_joiner(keys, feats, ttl_us, has_created), out_schema)


def _split_hot(
    ent: DataFrame, feat: DataFrame, keys: list[str], buckets: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """Give every row a ``BUCKET`` (0 for keys that are not hot) and add, per hot bucket, the
    key's winning feature row before the bucket's start (the only older row that can still
    match: any other is ranked below it, and is older, so also out of ttl when it is)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    b = buckets.select(*keys, BUCKET, F.col("lo"), F.col("hi"))

    def bucketed(df: DataFrame) -> DataFrame:
        j = df.join(F.broadcast(b), on=keys, how="left")
        inside = (F.col(TS) >= F.col("lo")) & (F.col(TS) < F.col("hi"))
        j = j.where(F.col(BUCKET).isNull() | inside)
        return j.withColumn(BUCKET, F.coalesce(F.col(BUCKET), F.lit(0)))

    e = bucketed(ent).drop("lo", "hi")
    f_in = bucketed(feat).drop("lo", "hi")
    # feature rows of hot keys before each bucket's start: the winner is the max of
    # (ts, created not null, created, seq) among them
    hot_feat = feat.join(F.broadcast(b), on=keys, how="inner").where(F.col(TS) < F.col("lo"))
    rank = F.struct(
        F.col(TS),
        F.col(CREATED).isNotNull(),
        F.coalesce(F.col(CREATED), F.timestamp_micros(F.lit(0))),
        F.col(SEQ),
    )
    w = Window.partitionBy(*keys, BUCKET)
    carry = (
        hot_feat.withColumn("__r", rank)
        .withColumn("__m", F.max("__r").over(w))
        .where(F.col("__r") == F.col("__m"))
        .drop("__r", "__m", "lo", "hi")
    )
    # rows outside every bucket of a hot key (before the first bucket's lo) are dropped by
    # `bucketed`; the carry rows bring the one that matters back
    return e, f_in.unionByName(carry.select(*f_in.columns))


def _partition_joiner(
    keys: list[str], feats: list[str], ttl_us: int | None, has_created: bool
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each partition runs (pickled to the executors: plain values only)."""

    def join(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        from banquet import _core

        got = list(batches)
        if not got:
            return
        table = pa.Table.from_batches(got)
        is_entity = pc.equal(table.column(SIDE), 0)
        ent = table.filter(is_entity)
        if ent.num_rows == 0:
            return
        feat = table.filter(pc.invert(is_entity))
        if feat.num_rows > 1:  # source order: the last of fully tied rows wins
            feat = feat.take(pc.sort_indices(feat.column(SEQ)))
        idx = _core.asof_join(
            [_flat(ent.column(k)) for k in keys],
            _flat(ent.column(TS)),
            [_flat(feat.column(k)) for k in keys],
            _flat(feat.column(TS)),
            _flat(feat.column(CREATED)) if has_created else None,
            ttl_us,
        )
        cols = [_flat(ent.column(ROW))] + [_flat(feat.column(f)).take(idx) for f in feats]
        out = pa.Table.from_arrays(cols, names=[ROW, *feats])
        yield from out.to_batches(max_chunksize=BATCH_ROWS)

    return join


def _flat(col: pa.ChunkedArray) -> pa.Array:
    if col.num_chunks == 1:
        return col.chunk(0)
    return col.combine_chunks() if col.num_chunks else pa.array([], col.type)


def ts_literal(us: int) -> Column:
    from pyspark.sql import functions as F

    return F.timestamp_micros(F.lit(int(us)))
