"""The offline store interface.

An offline store reads feature rows from the batch sources it understands. The point-in-time
join itself is the same Rust kernel for every store: stores only supply Arrow tables of
(join keys, event timestamp, created timestamp, features) restricted to a time range.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from banquet import types
from banquet._memory import memory_bound
from banquet.errors import SourceColumnMissing
from banquet.field import Field

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd
    import pyarrow as pa

    from banquet.config import RepoConfig
    from banquet.feature_view import FeatureView
    from banquet.request import ResolvedRequest
    from banquet.sources import DataSource


# Rows of the strided sample the default scan_view checks before building a full key mask.
SAMPLE_ROWS = 65_536


class OfflineStore(abc.ABC):
    def __init__(self, config: RepoConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def source_schema(self, source: DataSource) -> pa.Schema | None:
        """The columns ``source`` provides, or None when it cannot be known yet (e.g. a push
        source's file that no push has created)."""

    @abc.abstractmethod
    def read(
        self,
        source: DataSource,
        columns: list[str],
        start_us: int | None,
        end_us: int | None,
    ) -> pa.Table:
        """Rows of ``source`` with ``start_us <= timestamp_field <= end_us`` (None: unbounded),
        only ``columns`` (source column names), timestamps as ``timestamp[us, UTC]``."""

    def read_view(
        self, view: FeatureView, features: list[Field], start_us: int | None, end_us: int | None
    ) -> ViewRows:
        """A view's rows in ``[start_us, end_us]``: the needed source columns only, renamed by
        the source's field_mapping, keys cast to the join keys' types, timestamps UTC µs."""
        source = view.batch_source
        columns = view_source_columns(view, features)
        with memory_bound(f"reading feature view {view.name!r} from source {source.name!r}"):
            table = self.read(source, columns, start_us, end_us)
            mapping = source.field_mapping
            table = table.rename_columns([mapping.get(n, n) for n in table.column_names])
            return view_rows(view, table, source)

    def scan_view(
        self,
        view: FeatureView,
        features: list[Field],
        start_us: int | None,
        end_us: int | None,
        entity_keys: list[pa.Array] | None = None,
    ) -> pa.RecordBatchReader:
        """The columns of ``read_view(...).table`` as a stream of batches, in the source's row
        order, restricted to ``[start_us, end_us]`` and, with ``entity_keys`` (arrays aligned
        with ``view.join_keys``, cast to the join types), to rows whose key tuple occurs among
        them (a null key never matches). This default reads everything with ``read_view``
        and filters; stores that can skip rows while reading override it. When the filter
        would drop under 1/8 of the rows (or a strided sample of ``SAMPLE_ROWS`` rows keeps
        over 90%), or when there are at least a quarter as many entity rows as feature rows,
        it is skipped: it would cost more than it saves, and the extra rows' keys match no
        entity row, so no join can tell."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = self.read_view(view, features, start_us, end_us)
        table = rows.table
        n = table.num_rows
        # as many entity rows as a quarter of the feature rows: the hash set of their keys
        # costs about what the filter could save; no filter then
        wanted = entity_keys is not None and view.join_keys and n
        if wanted and entity_keys is not None and len(entity_keys[0]) < n // 4:
            with memory_bound(f"filtering feature view {view.name!r} by the entity keys"):
                if n > 4 * SAMPLE_ROWS:  # a strided sample first: most rows kept -> no mask
                    at = pa.array(np.arange(0, n, n // SAMPLE_ROWS, dtype=np.int64))
                    sample = key_mask(view.join_keys, [k.take(at) for k in rows.keys], entity_keys)
                    if (pc.sum(sample).as_py() or 0) > 0.9 * len(at):
                        return table.to_reader()
                mask = key_mask(view.join_keys, rows.keys, entity_keys)
                if (pc.sum(mask).as_py() or 0) < n - n // 8:
                    table = table.filter(mask)
        return table.to_reader()

    def append(self, source: DataSource, rows: pa.Table) -> None:
        """Add rows to a batch source (an offline push)."""
        from banquet.errors import DataSourceError

        raise DataSourceError(
            f"the {self.config.offline_store.type!r} offline store cannot append to source "
            f"{source.name!r}"
        )

    def query(self, sql: str) -> pa.Table:
        """Run ``sql`` and return its rows (entity rows given as a query)."""
        from banquet.errors import EntityDataError

        raise EntityDataError(
            f"entity_df is a SQL string, which the {self.config.offline_store.type!r} offline "
            "store cannot run; pass a DataFrame or use offline_store type 'postgres'"
        )

    def historical_job(self, request: ResolvedRequest, entity_df: Any) -> RetrievalJob:
        """The lazy job of ``get_historical_features`` (a SQL string runs through ``query``);
        a store that joins elsewhere (Spark) returns its own job."""
        from banquet.historical import HistoricalJob

        if isinstance(entity_df, str):
            entity_df = self.query(entity_df)
        return HistoricalJob(self, request, entity_df)

    def check_view(self, config: RepoConfig, fv: FeatureView) -> None:
        """At apply: the source must hold every column the view reads; join keys without a
        declared type take the source column's type."""
        source = fv.batch_source
        schema = self.source_schema(fv.source)
        if schema is None:
            return
        needed = [source.timestamp_field, *fv.join_keys, *(f.name for f in fv.source_fields)]
        if source.created_timestamp_column:
            needed.append(source.created_timestamp_column)
        names = set(schema.names)
        for name in needed:
            col = source.source_column(name)
            if col not in names:
                raise SourceColumnMissing(
                    f"feature view {fv.name!r}: source {source.name!r} has no column {col!r}"
                    + (f" (mapped to {name!r})" if col != name else "")
                    + f"; its columns are {sorted(names)}. Add the column to the source "
                    "or fix the name in the definition"
                )
        for key in fv.join_keys:
            if fv.key_dtype(key) is None:
                dt = types.from_arrow(schema.field(source.source_column(key)).type)
                if dt.name not in ("int32", "int64", "string", "bytes", "timestamp"):
                    dt = types.Int64 if dt.name in ("bool",) else dt
                fv.entity_columns.append(Field(name=key, dtype=dt))


@dataclass
class ViewRows:
    """Rows read for one view: the table (feature-named columns) and its typed key and
    timestamp columns, ready for the Rust kernels."""

    table: pa.Table
    keys: list[pa.Array]
    event_ts: pa.Array
    created_ts: pa.Array | None


def view_source_columns(view: FeatureView, features: list[Field]) -> list[str]:
    """The source columns a view read needs, in output order: the join keys, the timestamp
    field, the created column if any, then ``features`` (each once)."""
    source = view.batch_source
    created = source.created_timestamp_column
    wanted = [*view.join_keys, source.timestamp_field, *([created] if created else [])]
    wanted += [f.name for f in features]
    return list(dict.fromkeys(source.source_column(n) for n in wanted))


def view_rows(
    view: FeatureView, table: pa.Table | pa.RecordBatch, source: DataSource | None = None
) -> ViewRows:
    """The typed key and timestamp columns of a view's rows (columns already renamed by the
    field mapping): keys cast to the join keys' types, timestamps UTC µs, each one array.
    ``read_view`` and the batch-wise paths share this one normalization."""
    import pyarrow as pa

    from banquet.entity_data import flat, key_column, utc_us

    source = source or view.batch_source
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    created = source.created_timestamp_column
    where = f"source {source.name!r}"
    created_ts = flat(utc_us(table.column(created), f"{where} created")) if created else None
    return ViewRows(
        table=table,
        keys=[flat(key_column(table, k, view.key_dtype(k), where)) for k in view.join_keys],
        event_ts=flat(utc_us(table.column(source.timestamp_field), f"{where} timestamp")),
        created_ts=created_ts,
    )


def key_mask(names: list[str], keys: list[pa.Array], entity_keys: list[pa.Array]) -> pa.Array:
    """A boolean per row of ``keys``: its key tuple occurs among ``entity_keys``' tuples,
    compared as keys serialize (integers of any width, a timestamp by its whole second);
    a null key never matches. ``keys`` holds at least one column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from banquet import _core

    def widened(cols: list[pa.Array]) -> list[pa.Array]:
        return [c.cast(pa.int64()) if pa.types.is_integer(c.type) else c for c in cols]

    def valid(cols: list[pa.Array]) -> pa.Array | None:
        mask = None
        for c in cols:
            if c.null_count:
                v = pc.is_valid(c)
                mask = v if mask is None else pc.and_(mask, v)
        return mask

    import numpy as np

    n = len(keys[0])
    fk, ek = widened(keys), widened(entity_keys)
    ev = valid(ek)
    if ev is not None:
        ek = [c.filter(ev) for c in ek]
    if len(fk) == 1 and fk[0].type == ek[0].type and not pa.types.is_timestamp(fk[0].type):
        hit = pc.is_in(fk[0], value_set=ek[0])  # a null is not in the set
        return pc.fill_null(hit, False)
    fv = valid(fk)
    fk_valid = [c.filter(fv) for c in fk] if fv is not None else fk
    fb = _core.serialize_entity_keys(names, fk_valid)
    eb = _core.serialize_entity_keys(names, ek)
    hit = pc.is_in(fb, value_set=eb)
    if fv is None:
        return hit
    return pc.replace_with_mask(pa.array(np.zeros(n, dtype=bool)), fv, hit)


class RetrievalJob(abc.ABC):
    """A lazy result: nothing runs until one of the ``to_*`` methods is called."""

    @abc.abstractmethod
    def to_arrow(self) -> pa.Table: ...

    def to_df(self) -> pd.DataFrame:
        """The result as a pandas DataFrame (timestamps stay timezone-aware UTC)."""
        table = self.to_arrow()
        with memory_bound(f"converting {table.num_rows} result rows to pandas"):
            return table.to_pandas()

    def to_polars(self):  # type: ignore[no-untyped-def]
        try:
            import polars as pl
        except ImportError:
            raise ImportError("to_polars() needs polars: pip install polars") from None
        return pl.from_arrow(self.to_arrow())

    def to_arrow_batches(self) -> Iterator[pa.RecordBatch]:
        """The result as record batches, in row order (at least one, maybe empty)."""
        import pyarrow as pa

        table = self.to_arrow()
        yield from table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]

    def to_parquet(self, path: str) -> None:
        """Write the result to one Parquet file, batch by batch as ``to_arrow_batches``
        yields them (a join that spilled to disk is never held whole)."""
        import pyarrow.parquet as pq

        writer = None
        try:
            for batch in self.to_arrow_batches():
                if writer is None:
                    writer = pq.ParquetWriter(path, batch.schema)
                writer.write_batch(batch)
        finally:
            if writer is not None:
                writer.close()
