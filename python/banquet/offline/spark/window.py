"""Windowed aggregations on Spark: ``get_historical_features`` of an aggregated view
(ARCHITECTURE.md, "Windowed aggregations" and "Spark").

The same shape as the plain join (``join.py``): entity rows (``ROW, k0.., TS``) and the
feature rows of ``[min T - widest window, max T]`` (keys, event and created times, source
order, the aggregated columns) are unioned with a side tag and repartitioned by a hash of the
keys; each partition is one ``mapInArrow`` call that puts its feature rows in source order and
runs ``offline/window.aggregate`` (the Rust kernel ``window_aggregate``, GIL released), the
file store's code, so one rule has one implementation. Out comes ``ROW, f0..`` (one row per
entity row, ``f{i}`` the i-th requested aggregate in its output type).

Hot keys are split by time as in the plain join, but a window needs the rows before each split
point: a hot key's bucket ``[lo, hi)`` gets its entity rows with ``lo <= T < hi`` and its
feature rows with ``lo - widest window <= t < hi`` (a feature row is copied into every bucket
whose extended range holds it: about ``1 + widest window / bucket span`` copies). The bucket
stays a grouping key inside the partition (two buckets may share one), so no copy counts twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from banquet.offline import window as agg_window
from banquet.offline.spark import join

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from banquet.aggregation import Aggregation
    from banquet.feature_view import FeatureView
    from banquet.field import Field
    from banquet.offline.spark.store import SparkOfflineStore
    from banquet.request import ViewGroup


def reach_us(view: FeatureView, features: list[Field]) -> int | None:
    """How far before an entity row's time its feature rows can lie: the widest requested
    window (plus its slide) for an aggregated view, the ttl otherwise."""
    if not view.is_aggregated:
        return view.ttl_us
    return agg_window.max_window_us(agg_window.requested(view, features))


def aggregate_view(
    store: SparkOfflineStore,
    g: ViewGroup,
    entity: DataFrame,
    lo: int | None,
    hi: int | None,
    where: str,
    partitions: Callable[[DataFrame, DataFrame], int | None] | None = None,
) -> DataFrame:
    """``g``'s aggregates for every entity row of ``entity`` (``ROW, k0.., TS``), from the
    source rows with ``lo <= t <= hi``: ``ROW, f0..``. ``partitions(entity, features)``: the
    partition count the plain join would use (None: ``spark.sql.shuffle.partitions``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_type, to_arrow_schema

    view = g.view
    aggs = agg_window.requested(view, g.features)
    read = agg_window.source_fields(view, aggs)
    src = view.batch_source
    df = store.frame(src)
    join.require_columns(
        df, src, (*view.join_keys, src.timestamp_field, *(f.name for f in read)), where
    )
    created = src.created_timestamp_column
    nkeys = len(view.join_keys)
    keys = [join.key_name(i) for i in range(nkeys)]
    eschema = entity.schema
    feats = join.feature_rows(
        df,
        src,
        view.join_keys,
        [f.name for f in read],
        store.sequence(df, src),
        lo,
        hi,
        key_types=[eschema[k].dataType for k in keys],
        name=_col,
    )
    fschema = feats.schema
    cols = [_col(j) for j in range(len(read))]
    ent = entity.select(
        F.lit(0).cast("byte").alias(join.SIDE),
        F.col(join.ROW),
        *keys,
        F.col(join.TS),
        F.lit(None).cast("timestamp").alias(join.CREATED),
        F.lit(None).cast("long").alias(join.SEQ),
        *(F.lit(None).cast(fschema[c].dataType).alias(c) for c in cols),
    )
    feat = feats.select(
        F.lit(1).cast("byte").alias(join.SIDE),
        F.lit(None).cast("long").alias(join.ROW),
        *keys,
        F.col(join.TS),
        F.col(join.CREATED),
        F.col(join.SEQ),
        *cols,
    )
    part_cols = keys
    if store.hot_key_rows > 0:
        from banquet.offline.spark.store import spark_errors

        with spark_errors(f"{where}: looking for hot keys"):
            hot = join.hot_key_buckets(feats, nkeys, store.hot_key_rows)
        if hot is not None:
            reach = agg_window.max_window_us(aggs)
            ent, feat = _split_hot(ent, feat, keys, hot, reach)
            part_cols = [*keys, join.BUCKET]
    # a hot key's buckets share rows (the reach before each start) and may share a Spark
    # partition: the bucket stays a key of the kernel's grouping, so no row counts twice
    n = partitions(entity, feats) if partitions is not None else None
    both = ent.unionByName(feat)
    both = both.repartition(n, *part_cols) if n else both.repartition(*part_cols)
    # the output schema: ROW, then each aggregate in the type the file store gives it
    out_schema = entity.select(join.ROW).schema
    by_column = {f.name: _col(j) for j, f in enumerate(read)}
    col_arrow = to_arrow_schema(fschema, timezone="UTC")
    for i, a in enumerate(aggs):
        t = agg_window.output_arrow_type(a, col_arrow.field(by_column[a.column]).type)
        out_schema = out_schema.add(join.feature_name(i), from_arrow_type(t), True)
    arrow_out = to_arrow_schema(out_schema, timezone="UTC")
    fn = _partition_aggregator(part_cols, by_column, aggs, bool(created), arrow_out)
    return both.mapInArrow(fn, out_schema)


def _col(j: int) -> str:
    return f"__banquet_c{j}"


def _split_hot(
    ent: DataFrame, feat: DataFrame, keys: list[str], buckets: DataFrame, reach: int
) -> tuple[DataFrame, DataFrame]:
    """Every row gets a ``BUCKET`` (0 for keys that are not hot). A hot key's entity row goes
    to the bucket whose ``[lo, hi)`` holds its time (a null time to the first); its feature
    row to every bucket whose ``[lo - reach, hi)`` holds its time (a null time is never
    aggregated: dropped)."""
    from pyspark.sql import functions as F

    b = F.broadcast(buckets.select(*keys, join.BUCKET, "lo", "hi"))
    ts, lo, hi = F.col(join.TS), F.col("lo"), F.col("hi")
    no_bucket = F.col(join.BUCKET).isNull()
    inside = (lo.isNull() | (ts >= lo)) & (hi.isNull() | (ts < hi))
    ekeep = no_bucket | F.when(ts.isNull(), lo.isNull()).otherwise(inside)
    start = F.unix_micros(lo) - F.lit(reach)
    reached = (lo.isNull() | (F.unix_micros(ts) >= start)) & (hi.isNull() | (ts < hi))
    fkeep = no_bucket | (ts.isNotNull() & reached)

    def bucketed(df: DataFrame, keep: Any) -> DataFrame:
        j = df.join(b, on=keys, how="left").where(keep)
        return j.withColumn(join.BUCKET, F.coalesce(F.col(join.BUCKET), F.lit(0))).drop("lo", "hi")

    return bucketed(ent, ekeep), bucketed(feat, fkeep)


def _partition_aggregator(
    keys: list[str],
    by_column: dict[str, str],
    aggs: list[Aggregation],
    has_created: bool,
    out: pa.Schema,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each partition runs (pickled to the executors)."""

    def aggregate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from banquet.offline import window

        sides = join.partition_sides(batches)
        if sides is None:
            return
        ent, feat = sides

        def us(t: pa.Table, name: str) -> pa.Array:
            return join._flat(t.column(name)).cast(pa.int64())

        outs = window.aggregate(
            aggs,
            {c: join._flat(feat.column(name)) for c, name in by_column.items()},
            [join._flat(ent.column(k)) for k in keys],
            us(ent, join.TS),
            [join._flat(feat.column(k)) for k in keys],
            us(feat, join.TS),
            us(feat, join.CREATED) if has_created else None,
        )
        cols = [join._flat(ent.column(join.ROW))]
        cols += [o.cast(f.type) for o, f in zip(outs, list(out)[1:], strict=True)]
        yield from join.in_batches(pa.RecordBatch.from_arrays(cols, schema=out))

    return aggregate


# --- online tiles: materialization reads on the driver --------------------------------------

# Rows an aggregated view's driver read (``SparkOfflineStore.read_view``: its tiles at
# materialize, audit) may collect; ``banquet.driver_rows`` in spark_conf overrides it, 0 turns
# it off. Plain views' reads are not counted.
DRIVER_ROWS = 10_000_000


def check_driver_read(store: SparkOfflineStore, df: DataFrame, what: str) -> None:
    """Refuse (``ResourceExhausted``, before anything is collected or written) a read of more
    than ``banquet.driver_rows`` rows to the driver: one count job over the filtered rows."""
    from banquet.errors import ConfigError, ResourceExhausted
    from banquet.offline.spark.store import spark_errors

    raw = store.spark_conf.get("banquet.driver_rows", str(DRIVER_ROWS))
    try:
        cap = int(raw)
    except ValueError:
        raise ConfigError(
            f"'offline_store.spark_conf.banquet.driver_rows' is {raw!r}; expected a number of "
            "rows (0 turns the check off)"
        ) from None
    if cap <= 0:
        return
    with spark_errors(f"{what}: counting the rows to read"):
        n = df.count()
    if n > cap:
        raise ResourceExhausted(
            f"{what}: {n} rows would be collected to the Spark driver (online tiles of an "
            f"aggregated view are built there), over banquet.driver_rows = {cap}; materialize "
            "a shorter interval (materialize(start, end) in steps, or materialize-incremental "
            "more often), or raise offline_store.spark_conf.banquet.driver_rows"
        )
