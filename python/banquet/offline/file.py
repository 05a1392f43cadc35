"""The default offline store: Parquet files (one file or a directory of files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from banquet.errors import DataSourceError, SchemaMismatch, SourceColumnMissing, SourceFileNotFound
from banquet.offline.base import OfflineStore
from banquet.sources import FileSource

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pds

    from banquet.sources import DataSource


class FileOfflineStore(OfflineStore):
    def _path(self, source: DataSource) -> Path:
        if not isinstance(source, FileSource):
            raise DataSourceError(
                f"source {source.name!r} is a {type(source).__name__}, which the file offline "
                "store cannot read; set offline_store.type in feature_store.yaml"
            )
        return self.config.resolve(source.path)

    def dataset(self, source: DataSource) -> pds.Dataset:
        import pyarrow.dataset as ds

        path = self._path(source)
        if not path.exists():
            raise SourceFileNotFound(
                f"source {source.name!r}: {path} does not exist; check the path in the "
                "FileSource (relative paths are read from the feature repo folder)"
            )
        try:
            return ds.dataset(str(path), format="parquet", partitioning="hive")
        except Exception as e:  # pyarrow raises several types for unreadable files
            raise DataSourceError(
                f"source {source.name!r}: cannot read {path} as Parquet: {e}"
            ) from None

    def source_schema(self, source: DataSource) -> pa.Schema | None:
        from banquet.sources import PushSource

        if not self._path(source.batch).exists() and isinstance(source, PushSource):
            return None
        return self.dataset(source.batch).schema

    def read(
        self,
        source: DataSource,
        columns: list[str],
        start_us: int | None,
        end_us: int | None,
    ) -> pa.Table:
        import pyarrow.dataset as ds

        dataset = self.dataset(source)
        names = set(dataset.schema.names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise SourceColumnMissing(
                f"source {source.name!r} ({self._path(source)}) has no column {missing[0]!r}; "
                f"its columns are {sorted(names)}"
            )
        ts_field = dataset.schema.field(source.timestamp_field)
        cond = None
        for bound, op in ((start_us, "ge"), (end_us, "le")):
            if bound is None:
                continue
            scalar = _ts_scalar(bound, ts_field.type)
            c = ds.field(source.timestamp_field)
            expr = c >= scalar if op == "ge" else c <= scalar
            cond = expr if cond is None else cond & expr
        try:
            return dataset.to_table(columns=columns, filter=cond, use_threads=True)
        except (OSError, ValueError) as e:
            raise DataSourceError(
                f"source {source.name!r}: reading {self._path(source)} failed: {e}"
            ) from None

    def append(self, source: DataSource, rows: pa.Table) -> None:
        """A directory source gets a new Parquet file; a single-file source is rewritten
        atomically with the rows added (temp file, then rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from banquet.push import new_part_name

        path = self._path(source)
        if path.is_file():
            existing = pq.read_table(path)
            missing = [c for c in existing.column_names if c not in rows.column_names]
            if missing:
                raise SchemaMismatch(
                    f"pushed rows lack column(s) {missing} of source {source.name!r} ({path}); "
                    "add them to the frame (None values are fine)"
                )
            try:
                rows = rows.select(existing.column_names).cast(existing.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise SchemaMismatch(
                    f"pushed rows do not fit source {source.name!r} ({path}): {e}"
                ) from None
            tmp = path.with_name(f".{path.name}.{new_part_name()}")
            pq.write_table(pa.concat_tables([existing, rows]), tmp)
            tmp.replace(path)
            return
        path.mkdir(parents=True, exist_ok=True)
        if any(path.glob("*.parquet")):
            schema = self.dataset(source).schema
            rows = rows.select([n for n in schema.names if n in rows.column_names])
            rows = rows.cast(pa.schema([schema.field(n) for n in rows.column_names]))
        tmp = path / f".{new_part_name()}"
        pq.write_table(rows, tmp)
        tmp.replace(path / tmp.name[1:])


def _ts_scalar(us: int, t: pa.DataType) -> pa.Scalar:
    """A bound in the column's own type, so the filter is pushed into the Parquet scan."""
    import pyarrow as pa
    import pyarrow.types as pat

    if pat.is_timestamp(t):
        s = pa.scalar(us, pa.timestamp("us", tz=t.tz and "UTC"))
        if t.unit in ("s", "ms"):  # round outward so no row inside the window is lost
            return pa.scalar(s.value // (1_000_000 if t.unit == "s" else 1_000), t)
        return s.cast(t)
    if pat.is_date(t):
        return pa.scalar(us // 86_400_000_000, pa.int32()).cast(t)
    raise DataSourceError(f"timestamp column has type {t}, expected a timestamp")
