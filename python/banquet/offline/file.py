"""The default offline store: Parquet files (one file or a directory of files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from banquet import s3
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

    def _where(self, source: DataSource) -> str:
        """The source's location for messages: its s3:// URL, or the resolved local path."""
        if isinstance(source, FileSource):
            return self.config.location(source.path)
        return str(self._path(source))  # (raises: not a FileSource)

    def dataset(self, source: DataSource) -> pds.Dataset:
        import pyarrow.dataset as ds

        if (on_s3 := s3.target(source, self.config)) is not None:
            return s3.dataset(on_s3)
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

        if isinstance(source, PushSource) and not self._exists(source.batch):
            return None
        return self.dataset(source.batch).schema

    def _exists(self, source: DataSource) -> bool:
        if (on_s3 := s3.target(source, self.config)) is not None:
            return s3.exists(on_s3)
        return self._path(source).exists()

    def read(
        self,
        source: DataSource,
        columns: list[str],
        start_us: int | None,
        end_us: int | None,
    ) -> pa.Table:
        import pyarrow.dataset as ds
        import pyarrow.types as pat

        dataset = self.dataset(source)
        names = set(dataset.schema.names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise SourceColumnMissing(
                f"source {source.name!r} ({self._where(source)}) has no column {missing[0]!r}; "
                f"its columns are {sorted(names)}"
            )
        ts_field = dataset.schema.field(source.timestamp_field)
        cond = None
        bounds: list[int | None] = [None, None]
        for i, (bound, op) in enumerate(((start_us, "ge"), (end_us, "le"))):
            if bound is None:
                continue
            scalar = _ts_scalar(bound, ts_field.type)
            bounds[i] = scalar.value if pat.is_timestamp(ts_field.type) else None
            c = ds.field(source.timestamp_field)
            expr = c >= scalar if op == "ge" else c <= scalar
            cond = expr if cond is None else cond & expr
        try:
            if cond is None:
                return dataset.to_table(columns=columns, use_threads=True)
            return _scan_window(dataset, columns, cond, source.timestamp_field, *bounds)
        except (OSError, ValueError) as e:
            if (on_s3 := s3.target(source, self.config)) is not None:
                raise on_s3.error(e, "reading") from None
            raise DataSourceError(
                f"source {source.name!r}: reading {self._where(source)} failed: {e}"
            ) from None

    def append(self, source: DataSource, rows: pa.Table) -> None:
        """A directory source gets a new Parquet file; a single-file source is rewritten
        atomically with the rows added (temp file, then rename)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from banquet.push import new_part_name

        if (on_s3 := s3.target(source, self.config)) is not None:
            s3.append(on_s3, rows)
            return
        path = self._path(source)
        if path.is_file():
            existing = pq.read_table(path)
            rows = fit_rows(rows, existing.schema, source.name, str(path))
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


def fit_rows(rows: pa.Table, schema: pa.Schema, source_name: str, where: str) -> pa.Table:
    """Pushed ``rows`` in a single-file source's column order and types, or SchemaMismatch."""
    import pyarrow as pa

    missing = [c for c in schema.names if c not in rows.column_names]
    if missing:
        raise SchemaMismatch(
            f"pushed rows lack column(s) {missing} of source {source_name!r} ({where}); "
            "add them to the frame (None values are fine)"
        )
    try:
        return rows.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SchemaMismatch(
            f"pushed rows do not fit source {source_name!r} ({where}): {e}"
        ) from None


def _scan_window(
    dataset: pds.Dataset,
    columns: list[str],
    cond: pds.Expression,
    ts: str,
    lo: int | None,
    hi: int | None,
) -> pa.Table:
    """``dataset.to_table(filter=cond)``, with the same rows in the same order, but files
    whose Parquet statistics put every timestamp inside ``[lo, hi]`` (raw values in the
    column's unit) are read without the filter: evaluating it row by row doubled the read."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    runs: list[tuple[bool, list[pds.Fragment]]] = []  # consecutive files, filtered or not
    for frag in dataset.get_fragments():
        needs_filter = not _inside(frag, ts, dataset.schema.field(ts).type, lo, hi)
        if runs and runs[-1][0] == needs_filter:
            runs[-1][1].append(frag)
        else:
            runs.append((needs_filter, [frag]))
    if len(runs) == 1 and runs[0][0]:
        return dataset.to_table(columns=columns, filter=cond, use_threads=True)
    parts = [
        ds.FileSystemDataset(frags, dataset.schema, dataset.format, dataset.filesystem).to_table(
            columns=columns, filter=cond if needs_filter else None, use_threads=True
        )
        for needs_filter, frags in runs
    ]
    return parts[0] if len(parts) == 1 else pa.concat_tables(parts)


def _inside(
    frag: pds.Fragment, ts: str, unit_type: pa.DataType, lo: int | None, hi: int | None
) -> bool:
    """True if the file's statistics show no null timestamp and every row group's raw
    min/max within the bounds (both must be known: ``None`` means not computable here)."""
    import pyarrow as pa

    if lo is None or hi is None:
        return False
    try:
        meta = frag.metadata
    except (AttributeError, OSError, ValueError):
        return False
    if meta.num_row_groups == 0:
        return False
    try:  # the raw values are in the file's unit, the bounds in the dataset's
        if meta.schema.to_arrow_schema().field(ts).type != unit_type:
            return False
    except (KeyError, ValueError, pa.ArrowException):
        return False
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        col = next(
            (rg.column(j) for j in range(rg.num_columns) if rg.column(j).path_in_schema == ts),
            None,
        )
        if col is None or col.physical_type != "INT64":
            return False  # a partition column, INT96 or a missing column: keep the filter
        st = col.statistics
        if st is None or not st.has_min_max or not st.has_null_count or st.null_count != 0:
            return False
        if not (lo <= st.min_raw and st.max_raw <= hi):
            return False
    return True


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
