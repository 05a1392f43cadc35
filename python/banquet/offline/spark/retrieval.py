"""``get_historical_features`` on the Spark offline store: the lazy job.

``entity_df`` may be pandas, polars, pyarrow (anything ``entity_data.to_table`` takes), a Spark
DataFrame or a Spark SQL string. Checks (timestamp column, join keys and their types, name
clashes, on-demand request fields) run before any Spark job, as in the in-process engine.
Entity rows get a row id: local rows their position, Spark rows
``monotonically_increasing_id`` over the cached frame (so every job sees the same ids). Each
feature view is one ``join.join_view`` job; the output follows the file store's rules: the
entity columns unchanged and first, one row per entity row in input order, then the features
in request order, cast to their declared types.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from banquet import types
from banquet._memory import memory_bound
from banquet.entity_data import flat, key_column, timestamp_column, to_table, utc_us
from banquet.errors import FeatureNameCollisionError, SchemaMismatch
from banquet.offline.base import RetrievalJob
from banquet.offline.spark import join
from banquet.offline.spark import window as spark_window
from banquet.offline.spark.store import spark_errors

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from banquet.offline.spark.store import SparkOfflineStore
    from banquet.request import ResolvedRequest, ViewGroup


class SparkRetrievalJob(RetrievalJob):
    """Computed on the first ``to_*`` call; ``to_arrow`` keeps its result."""

    def __init__(self, store: SparkOfflineStore, request: ResolvedRequest, entity_df: Any) -> None:
        self._store = store
        self._request = request
        self._local: pa.Table | None = None
        self._frame: DataFrame | None = None
        if isinstance(entity_df, str):
            with spark_errors("entity_df query"):
                self._frame = store.spark.sql(entity_df.strip().rstrip(";"))
        elif _is_spark_frame(entity_df):
            self._frame = entity_df
        else:
            with memory_bound("get_historical_features (reading entity_df)"):
                self._local = to_table(entity_df)
        if self._frame is not None:
            with spark_errors("entity_df"):
                shape = self._frame.limit(0).toArrow()
        else:
            assert self._local is not None
            shape = self._local
        self._columns = shape.column_names
        self._ts_col = timestamp_column(shape)
        clash = sorted(set(request.names) & set(shape.column_names))
        if clash:
            raise FeatureNameCollisionError(
                f"entity_df already has columns named {clash}, like requested features; "
                "rename them or pass full_feature_names=True"
            )
        for g in request.groups:  # fail fast on a missing or mistyped key, before any job
            if not g.is_on_demand:
                for k in g.view.join_keys:
                    key_column(shape, g.view.entity_column(k), _key_type(g.view, k), _where(g))
        if any(g.is_on_demand for g in request.groups):
            from banquet.on_demand import check_request_fields

            check_request_fields(request, shape.column_names, "entity_df", "add them as columns")
        self._result: pa.Table | None = None
        self._cached: DataFrame | None = None

    # --- results -------------------------------------------------------------------------

    def to_arrow(self) -> pa.Table:
        if self._result is None:
            with memory_bound("get_historical_features on Spark (collecting the result)"):
                self._result = self._run_arrow()
        return self._result

    def to_df(self) -> pd.DataFrame:
        return super().to_df()

    def to_spark_df(self) -> DataFrame:
        """The result as a Spark DataFrame, computed on the executors (sorted by the entity
        rows' input order)."""
        from pyspark.sql import functions as F

        spark = self._store.spark
        if any(g.is_on_demand for g in self._request.groups) or self._result is not None:
            return spark.createDataFrame(self.to_arrow())
        entity = self._entity_full()
        out = entity
        names: list[str] = []
        for gi, g in enumerate(self._request.groups):
            res = self._view_result(g)
            renamed = [F.col(join.ROW)]
            for fi, f in enumerate(g.features):
                name = self._out_name(gi, fi)
                if name is None:
                    continue
                renamed.append(F.col(join.feature_name(fi)).cast(_spark_type(f.dtype)).alias(name))
                names.append(name)
            out = out.join(res.select(*renamed), on=join.ROW, how="left")
        ordered = [self._out_name_at(i) for i in range(len(self._request.names))]
        return out.orderBy(join.ROW).select(*self._columns, *(n for n in ordered if n in names))

    def to_parquet(self, path: str) -> None:
        """Written by Spark (one file per task, in parallel): ``path`` is a folder of
        Parquet files, the rows in input order across the files' names."""
        with spark_errors(f"writing {path}"):
            self.to_spark_df().write.mode("overwrite").parquet(path)

    # --- the work ------------------------------------------------------------------------

    def _run_arrow(self) -> pa.Table:
        if self._local is None:
            if any(g.is_on_demand for g in self._request.groups):
                return self._with_on_demand(self._spark_base_arrow())
            table = self._spark_base_arrow()
            return table
        n = self._local.num_rows

        def one(g: ViewGroup) -> list[pa.Array]:
            if g.is_on_demand:
                return []
            if n == 0:
                return [pa.nulls(0, f.dtype.to_arrow()) for f in g.features]
            with spark_errors(f"feature view {g.view.name!r} on Spark"):
                got = self._view_result(g).toArrow()
            if got.num_rows != n:
                raise SchemaMismatch(
                    f"feature view {g.view.name!r}: the Spark join returned {got.num_rows} rows "
                    f"for {n} entity rows"
                )
            order = pc.sort_indices(got.column(join.ROW))
            return [
                _cast(flat(got.column(join.feature_name(fi))).take(order), f, g)
                for fi, f in enumerate(g.features)
            ]

        groups = self._request.groups
        if sum(not g.is_on_demand for g in groups) > 1:
            # one Spark job per view, submitted together: the scheduler runs their tasks side
            # by side (small jobs are mostly scheduling latency)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(len(groups), 8)) as pool:
                per_group = list(pool.map(one, groups))
        else:
            per_group = [one(g) for g in groups]
        return self._assemble(self._local, per_group)

    def _assemble(self, entity: pa.Table, per_group: list[list[pa.Array]]) -> pa.Table:
        from banquet.historical import utc_aware_timestamps  # as Feast: UTC-aware

        req = self._request
        out = utc_aware_timestamps(entity, self._ts_col)
        for (gi, fi), name in zip(req.columns, req.names):
            if per_group[gi]:
                out = out.append_column(name, per_group[gi][fi])
        if any(g.is_on_demand for g in req.groups):
            from banquet.on_demand import apply_historical

            out = apply_historical(out, req, per_group)
        return out

    def _spark_base_arrow(self) -> pa.Table:
        """A Spark entity frame: the whole result collected from Spark, features cast to
        their declared Arrow types."""
        with spark_errors("get_historical_features on Spark"):
            table = self.to_spark_df().toArrow()
        for gi, g in enumerate(self._request.groups):
            for fi, f in enumerate(g.features):
                name = self._out_name(gi, fi)
                if name is not None and name in table.column_names:
                    i = table.column_names.index(name)
                    table = table.set_column(i, name, _cast(flat(table.column(i)), f, g))
        return table

    def _with_on_demand(self, table: pa.Table) -> pa.Table:
        per_group: list[list[pa.Array]] = []
        for gi, g in enumerate(self._request.groups):
            if g.is_on_demand:
                per_group.append([])
                continue
            per_group.append(
                [flat(table.column(self._out_name(gi, fi) or "")) for fi in range(len(g.features))]
            )
        entity = table.select(self._columns)
        return self._assemble(entity, per_group)

    def _out_name(self, gi: int, fi: int) -> str | None:
        for (g, f), name in zip(self._request.columns, self._request.names):
            if (g, f) == (gi, fi):
                return name
        return None

    def _out_name_at(self, i: int) -> str:
        return self._request.names[i]

    # --- Spark frames --------------------------------------------------------------------

    def _entity_full(self) -> DataFrame:
        """The entity rows with their row id, every column, as a Spark frame."""
        from pyspark.sql import functions as F

        if self._cached is None:
            if self._local is not None:
                ids = pa.array(range(self._local.num_rows), pa.int64())
                with spark_errors("entity_df"):
                    self._cached = self._store.spark.createDataFrame(
                        self._local.append_column(join.ROW, ids)
                    )
            else:
                assert self._frame is not None
                self._cached = self._frame.withColumn(
                    join.ROW, F.monotonically_increasing_id()
                ).cache()
        return self._cached

    def _local_frame(self, table: pa.Table) -> DataFrame:
        """Local rows as a Spark frame: written to Parquet in the store's staging folder and
        read back (parallel reads, a small plan), else through ``createDataFrame``. The file
        lives as long as this job (a lazy ``to_spark_df`` may read it later)."""
        spark = self._store.spark
        folder = self._store.staging_dir()
        if folder is None:
            return spark.createDataFrame(table)
        import os
        import uuid
        import weakref

        import pyarrow.parquet as pq

        path = os.path.join(folder, f"entity-{uuid.uuid4().hex}.parquet")
        # row groups of 256k rows: Spark splits the file into tasks at row groups
        pq.write_table(table, path, row_group_size=262_144, compression="none")
        weakref.finalize(self, _remove, path)
        return spark.read.parquet(path)

    def _entity_keys(self, g: ViewGroup) -> tuple[DataFrame, int | None, int | None]:
        """``ROW, k0.., TS`` for ``g``'s view and the feature time window ``[lo, hi]``."""
        from pyspark.sql import functions as F

        view = g.view
        reach = spark_window.reach_us(view, g.features)  # the ttl, or the widest window
        if self._local is not None:
            where = _where(g)
            ts = flat(
                utc_us(self._local.column(self._ts_col), f"entity_df column {self._ts_col!r}")
            )
            cols = {join.ROW: pa.array(range(len(ts)), pa.int64())}
            for i, k in enumerate(view.join_keys):
                cols[join.key_name(i)] = flat(
                    key_column(self._local, view.entity_column(k), _key_type(view, k), where)
                )
            cols[join.TS] = ts
            with spark_errors("entity_df"):
                frame = self._local_frame(pa.table(cols))
            lo, hi = _window(ts, reach)
            return frame, lo, hi
        full = self._entity_full()
        keys = []
        for i, k in enumerate(view.join_keys):
            col = F.col(view.entity_column(k))
            dtype = _key_type(view, k)
            keys.append(
                (col if dtype is None else col.cast(_spark_type(dtype))).alias(join.key_name(i))
            )
        frame = full.select(
            F.col(join.ROW), *keys, F.col(self._ts_col).cast("timestamp").alias(join.TS)
        )
        with spark_errors("entity_df"):
            row = frame.agg(F.min(join.TS).alias("lo"), F.max(join.TS).alias("hi")).toArrow()
        lo_hi = (
            row.column("lo").cast(pa.int64())[0].as_py(),
            row.column("hi").cast(pa.int64())[0].as_py(),
        )
        if lo_hi[1] is None:
            return frame, 0, 0
        lo = None if reach is None else lo_hi[0] - reach
        return frame, lo, lo_hi[1]

    def _view_result(self, g: ViewGroup) -> DataFrame:
        from pyspark.sql import functions as F

        view = g.view
        src = view.batch_source
        entity, lo, hi = self._entity_keys(g)
        store = self._store
        if view.is_aggregated:  # windowed aggregates (window.py)
            return spark_window.aggregate_view(
                store, g, entity, lo, hi, _where(g), self._join_partitions
            )
        df = store.frame(src)
        fields = (*view.join_keys, src.timestamp_field, *(f.name for f in g.features))
        join.require_columns(df, src, fields, _where(g))
        df = df.withColumn(join.SEQ, store.sequence(df, src))
        ts = F.col(src.source_column(src.timestamp_field)).cast("timestamp")
        if lo is not None:
            df = df.where(ts >= join.ts_literal(lo))
        if hi is not None:
            df = df.where(ts <= join.ts_literal(hi))
        eschema = entity.schema
        keys = []
        ent_keys = []
        for i, k in enumerate(view.join_keys):
            name = join.key_name(i)
            target = eschema[name].dataType
            keys.append(F.col(src.source_column(k)).cast(target).alias(name))
            ent_keys.append(F.col(name))
        created = src.created_timestamp_column
        feats = df.select(
            *keys,
            ts.alias(join.TS),
            (
                F.col(src.source_column(created)).cast("timestamp")
                if created
                else F.lit(None).cast("timestamp")
            ).alias(join.CREATED),
            F.col(join.SEQ),
            *(
                F.col(src.source_column(f.name)).alias(join.feature_name(fi))
                for fi, f in enumerate(g.features)
            ),
        )
        hot = None
        if store.hot_key_rows > 0:
            with spark_errors(f"{_where(g)}: looking for hot keys"):
                hot = join.hot_key_buckets(feats, len(view.join_keys), store.hot_key_rows)
        return join.join_view(
            entity,
            feats,
            len(view.join_keys),
            len(g.features),
            view.ttl_us,
            bool(created),
            hot_buckets=hot,
            partitions=self._join_partitions(entity, feats),
        )

    def _join_partitions(self, entity: DataFrame, feats: DataFrame) -> int | None:
        """The join's partition count: ``banquet.join_partitions`` if set, else a multiple of
        the cores (``defaultParallelism``) giving about ``PARTITION_BYTES`` of rows each, by
        Spark's size estimate of both sides (a partition is joined whole in one Python
        worker, so this bounds its memory; more partitions than that only add tasks and
        Python hand-overs). None when Spark cannot estimate (a source without statistics):
        ``spark.sql.shuffle.partitions``, which adaptive execution may coalesce."""
        if self._store.join_partitions > 0:
            return self._store.join_partitions
        cores = max(1, self._store.spark.sparkContext.defaultParallelism)
        try:
            size = sum(_size_estimate(f) for f in (entity, feats))
        except Exception:
            return None
        if size >= UNKNOWN_SIZE:
            return None
        per_core = -(-size // (cores * PARTITION_BYTES))
        return int(cores * max(1, per_core))


# about this many bytes (Spark's in-memory estimate) per join partition
PARTITION_BYTES = 128 << 20
UNKNOWN_SIZE = 1 << 62  # Spark's estimate when it has none is Long.MaxValue


def _size_estimate(df: DataFrame) -> int:
    """Spark's estimate of ``df``'s size in bytes (plan statistics: no job runs)."""
    stats = df._jdf.queryExecution().optimizedPlan().stats()
    return int(str(stats.sizeInBytes()))


def _remove(path: str) -> None:
    import contextlib
    import os

    with contextlib.suppress(OSError):
        os.remove(path)


def _is_spark_frame(obj: Any) -> bool:
    if "pyspark" not in sys.modules:
        return False
    from pyspark.sql import DataFrame

    return isinstance(obj, DataFrame)


def _key_type(view: Any, key: str) -> types.BanquetType | None:
    """Integer keys join as int64 (as in the in-process engine)."""
    dtype = view.key_dtype(key)
    return types.Int64 if dtype is not None and dtype.name == "int32" else dtype


def _window(ts: pa.Array, ttl_us: int | None) -> tuple[int | None, int | None]:
    if len(ts) and ts.null_count < len(ts):
        lo_hi = pc.min_max(ts)
        hi = lo_hi["max"].value
        return (None if ttl_us is None else lo_hi["min"].value - ttl_us), hi
    return 0, 0  # nothing can match: read an empty range


def _spark_type(dtype: types.BanquetType) -> Any:
    from pyspark.sql.pandas.types import from_arrow_type

    return from_arrow_type(dtype.to_arrow())


def _cast(values: pa.Array, f: Any, g: ViewGroup) -> pa.Array:
    target = f.dtype.to_arrow()
    if values.type == target:
        return values
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        src = g.view.batch_source
        raise SchemaMismatch(
            f"{_where(g)}: source column {src.source_column(f.name)!r} has type "
            f"{values.type}, which does not convert to the declared {f.dtype}"
        ) from None


def _where(g: ViewGroup) -> str:
    return f"feature view {g.view.name!r}"
