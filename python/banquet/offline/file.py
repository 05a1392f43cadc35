"""The default offline store: Parquet files (one file or a directory of files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from banquet.errors import DataSourceError, SourceFileNotFound
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
            raise DataSourceError(f"source {source.name!r}: cannot read {path} as Parquet: {e}") from None

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
        raise NotImplementedError  # filled in by the historical retrieval work
