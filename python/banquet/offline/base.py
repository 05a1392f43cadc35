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
    import pandas as pd
    import pyarrow as pa

    from banquet.config import RepoConfig
    from banquet.feature_view import FeatureView
    from banquet.request import ResolvedRequest
    from banquet.sources import DataSource


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
        from banquet.entity_data import flat, key_column, utc_us

        source = view.batch_source
        created = source.created_timestamp_column
        wanted = [*view.join_keys, source.timestamp_field, *([created] if created else [])]
        wanted += [f.name for f in features]
        columns = list(dict.fromkeys(source.source_column(n) for n in wanted))
        with memory_bound(f"reading feature view {view.name!r} from source {source.name!r}"):
            table = self.read(source, columns, start_us, end_us)
            mapping = source.field_mapping
            table = table.rename_columns([mapping.get(n, n) for n in table.column_names])
            where = f"source {source.name!r}"
            created_ts = (
                flat(utc_us(table.column(created), f"{where} created")) if created else None
            )
            return ViewRows(
                table=table,
                keys=[flat(key_column(table, k, view.key_dtype(k), where)) for k in view.join_keys],
                event_ts=flat(utc_us(table.column(source.timestamp_field), f"{where} timestamp")),
                created_ts=created_ts,
            )

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
        needed = [source.timestamp_field, *fv.join_keys, *(f.name for f in fv.features)]
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

    def to_parquet(self, path: str) -> None:
        import pyarrow.parquet as pq

        pq.write_table(self.to_arrow(), path)
