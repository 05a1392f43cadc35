"""The default offline store: Parquet files (one file, a directory of files, a hive-partitioned
directory; local or ``s3://``), read by the Rust scan (``_core.ParquetDataset``: row groups in
parallel, pruning by statistics, the key semi-join and late materialization). Offline push
(``append``) writes with pyarrow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from banquet import s3
from banquet.errors import (
    BanquetError,
    DataSourceError,
    ResourceExhausted,
    SchemaMismatch,
    SourceAccessDenied,
    SourceColumnMissing,
    SourceFileNotFound,
    SourceUnreachable,
)
from banquet.offline.base import OfflineStore
from banquet.sources import FileSource

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pds

    from banquet._core import ParquetDataset
    from banquet.feature_view import FeatureView
    from banquet.field import Field
    from banquet.sources import DataSource

#: Rows per batch the scan yields.
BATCH_ROWS = 1 << 16

#: The column a locating scan appends: each row's locator (UInt64) for ``Located.take``.
LOCATOR = "__banquet_row"


class Located:
    """Pass 1 of the two-pass join (``offline.join``): a view's key and time columns with
    each row's locator (``reader``, the ``scan_view`` columns minus the features, then
    ``LOCATOR``), and ``take``, which reads the feature columns of given rows only."""

    def __init__(
        self,
        reader: pa.RecordBatchReader,
        take: Callable[[list[Field], pa.Array], list[pa.Array]],
    ) -> None:
        self.reader = reader
        self.take = take


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
        """The source as a pyarrow dataset (offline push appends through it)."""
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

    def open(self, source: DataSource) -> ParquetDataset:
        """The source opened for the Rust scan: its files listed, their footers read."""
        from banquet._core import ParquetDataset

        on_s3 = s3.target(source, self.config)
        if on_s3 is not None:
            try:
                return ParquetDataset(str(on_s3.url), on_s3.opts)
            except DataSourceError as e:
                raise _s3_error(on_s3, e) from None
        path = self._path(source)
        if not path.exists():
            raise SourceFileNotFound(
                f"source {source.name!r}: {path} does not exist; check the path in the "
                "FileSource (relative paths are read from the feature repo folder)"
            )
        try:
            return ParquetDataset(str(path))
        except DataSourceError as e:  # the same class, with the source named
            raise type(e)(f"source {source.name!r}: {e}") from None

    def source_rows(self, source: DataSource) -> int | None:
        """Rows in a local Parquet source, from its footers; None on S3 (a footer read is a
        round trip) or when the source cannot be read here (the scan then says why)."""
        if not isinstance(source, FileSource) or s3.target(source, self.config) is not None:
            return None
        try:
            return self.open(source).num_rows
        except BanquetError:
            return None

    def source_schema(self, source: DataSource) -> pa.Schema | None:
        from banquet.sources import PushSource

        if isinstance(source, PushSource) and not self._exists(source.batch):
            return None
        return self.open(source.batch).schema

    def _exists(self, source: DataSource) -> bool:
        if (on_s3 := s3.target(source, self.config)) is not None:
            return s3.exists(on_s3)
        return self._path(source).exists()

    def _checked(self, source: DataSource, columns: list[str]) -> ParquetDataset:
        dataset = self.open(source)
        names = set(dataset.schema.names)
        missing = [c for c in columns if c not in names]
        if missing:
            raise SourceColumnMissing(
                f"source {source.name!r} ({self._where(source)}) has no column {missing[0]!r}; "
                f"its columns are {sorted(names)}"
            )
        return dataset

    def _scan(
        self,
        source: DataSource,
        dataset: ParquetDataset,
        columns: list[str],
        start_us: int | None,
        end_us: int | None,
        key_columns: list[str] | None = None,
        entity_keys: list[pa.Array] | None = None,
        locate: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """The scan's batches; every failure a typed error naming the source."""
        import pyarrow as pa

        on_s3 = s3.target(source, self.config)
        try:
            reader = dataset.scan(
                columns,
                ts_column=source.timestamp_field,
                lo_us=start_us,
                hi_us=end_us,
                key_columns=key_columns or [],
                entity_keys=entity_keys,
                batch_rows=BATCH_ROWS,
                locate=locate,
            )
        except DataSourceError as e:
            raise self._named(source, e) from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as e:
                # an error met inside the stream (a corrupt row group, a file whose columns
                # do not fit) arrives as a pyarrow error carrying the scan's message
                msg = str(e).removeprefix("External error: ")
                if msg.startswith("out of memory:"):  # the scan's probe before a wave
                    raise ResourceExhausted(f"source {source.name!r}: {msg}") from None
                err = DataSourceError(msg)
                if on_s3 is not None:
                    raise _s3_error(on_s3, err) from None
                raise DataSourceError(
                    f"source {source.name!r}: reading {self._where(source)} failed: {msg}"
                ) from None
            yield batch

    def _named(self, source: DataSource, e: DataSourceError) -> DataSourceError:
        on_s3 = s3.target(source, self.config)
        return _s3_error(on_s3, e) if on_s3 else type(e)(f"source {source.name!r}: {e}")

    def read(
        self,
        source: DataSource,
        columns: list[str],
        start_us: int | None,
        end_us: int | None,
    ) -> pa.Table:
        import pyarrow as pa

        dataset = self._checked(source, columns)
        schema = pa.schema([dataset.schema.field(c) for c in columns])
        batches = list(self._scan(source, dataset, columns, start_us, end_us))
        return pa.Table.from_batches(batches, schema=schema)

    def scan_view(
        self,
        view: FeatureView,
        features: list[Field],
        start_us: int | None,
        end_us: int | None,
        entity_keys: list[pa.Array] | None = None,
    ) -> pa.RecordBatchReader:
        """The columns of ``read_view(...).table`` (renamed by the source's field_mapping) as
        batches in source order, in ``[start_us, end_us]``, and, with ``entity_keys`` (one
        array per join key, cast to the join keys' types), only rows whose key tuple occurs
        among them: tested in Rust on the key columns before any feature column is decoded."""
        reader, _ = self._view_scan(view, features, start_us, end_us, entity_keys, None)
        return reader

    def locate_view(
        self,
        view: FeatureView,
        start_us: int | None,
        end_us: int | None,
        entity_keys: list[pa.Array],
        min_rows: int,
    ) -> Located | None:
        """Pass 1 of the two-pass join: ``scan_view``'s rows without the feature columns,
        each with its locator, and a ``take`` that decodes the features of given rows only;
        None when the source holds fewer than ``min_rows`` rows (``offline.join`` decides:
        reading the features of every surviving row at once is then cheaper)."""
        import pyarrow as pa

        source = view.batch_source
        reader, dataset = self._view_scan(view, [], start_us, end_us, entity_keys, min_rows)
        if dataset is None:
            return None

        def take(features: list[Field], locators: pa.Array) -> list[pa.Array]:
            columns = list(dict.fromkeys(source.source_column(f.name) for f in features))
            try:
                batch = dataset.take(columns, locators.cast(pa.uint64()))
            except DataSourceError as e:
                raise self._named(source, e) from None
            by_name = dict(zip(columns, batch.columns, strict=True))
            return [by_name[source.source_column(f.name)] for f in features]

        return Located(reader, take)

    def _view_scan(
        self,
        view: FeatureView,
        features: list[Field],
        start_us: int | None,
        end_us: int | None,
        entity_keys: list[pa.Array] | None,
        locate_min_rows: int | None,
    ) -> tuple[pa.RecordBatchReader, ParquetDataset | None]:
        """``scan_view``'s reader; with ``locate_min_rows`` a locating scan (and its dataset),
        or (an unread reader, None) when the source has fewer rows than that."""
        import pyarrow as pa

        source = view.batch_source
        created = source.created_timestamp_column
        wanted = [*view.join_keys, source.timestamp_field, *([created] if created else [])]
        wanted += [f.name for f in features]
        columns = list(dict.fromkeys(source.source_column(n) for n in wanted))
        dataset = self._checked(source, columns)
        locate = locate_min_rows is not None
        if locate and dataset.num_rows < (locate_min_rows or 0):
            return pa.RecordBatchReader.from_batches(pa.schema([]), []), None
        key_columns = [source.source_column(k) for k in view.join_keys]
        keys = None
        if entity_keys is not None:
            keys = [_flat(k) for k in entity_keys]
            schema = dataset.schema
            if any(
                _key_kind(schema.field(c).type) is None
                or _key_kind(schema.field(c).type) != _key_kind(k.type)
                for c, k in zip(key_columns, keys, strict=True)
            ):
                keys = None  # kinds differ (e.g. string keys in the file): match after the cast
        mapping = source.field_mapping
        fields = [dataset.schema.field(c).with_name(mapping.get(c, c)) for c in columns]
        if locate:
            fields.append(pa.field(LOCATOR, pa.uint64(), nullable=False))
        out = pa.schema(fields)
        batches = self._scan(
            source, dataset, columns, start_us, end_us, key_columns, keys, locate=locate
        )
        renamed: Iterator[pa.RecordBatch] = (
            pa.RecordBatch.from_arrays(b.columns, schema=out) for b in batches
        )
        if entity_keys is not None and keys is None:
            renamed = _semi_join_after_cast(view, renamed, out, [_flat(k) for k in entity_keys])
        return pa.RecordBatchReader.from_batches(out, renamed), dataset if locate else None

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


def _s3_error(on_s3: s3.S3Target, e: DataSourceError) -> DataSourceError:
    """The scan's typed S3 error in the words of ``s3.S3Target.error`` (which part is
    missing, the endpoint redacted, no credentials)."""
    msg = str(e)
    if isinstance(e, SourceFileNotFound):
        return on_s3.error(FileNotFoundError(msg), "reading")
    if isinstance(e, SourceAccessDenied):
        return on_s3.error(PermissionError(f"ACCESS_DENIED: {msg}"), "reading")
    if isinstance(e, SourceUnreachable):
        return on_s3.error(ConnectionError(f"could not connect: {msg}"), "reading")
    return on_s3.error(e, "reading")


def _flat(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    import pyarrow as pa

    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _key_kind(t: pa.DataType) -> str | None:
    """The class of values a key column holds, as the Rust key set compares them."""
    import pyarrow.types as pat

    if pat.is_dictionary(t):
        t = t.value_type
    if pat.is_integer(t):
        return "int"
    if pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t):
        return "str"
    if pat.is_binary(t) or pat.is_large_binary(t) or pat.is_binary_view(t):
        return "bytes"
    if pat.is_timestamp(t):
        return "ts"
    return None


def _semi_join_after_cast(
    view: FeatureView,
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    entity_keys: list[pa.Array],
) -> Iterator[pa.RecordBatch]:
    """The key semi-join for a file whose key columns hold another kind of value than the
    join keys (the rare case the Rust scan does not compare): each batch's keys are cast the
    way ``read_view`` casts them, then matched against the entity keys, order kept."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from banquet.entity_data import flat, key_column

    names = [f"k{i}" for i in range(len(entity_keys))]
    ids = pa.table(dict(zip(names, entity_keys, strict=True))).group_by(names).aggregate([])
    for batch in batches:
        table = pa.Table.from_batches([batch], schema=schema)
        keys = {
            n: flat(key_column(table, k, view.key_dtype(k), "the file source"))
            for n, k in zip(names, view.join_keys, strict=True)
        }
        probe = pa.table({**keys, "__row": pa.array(range(batch.num_rows), pa.int64())})
        hit = probe.join(ids, names, join_type="left semi").column("__row")
        yield batch.take(pc.take(hit, pc.sort_indices(hit)))
