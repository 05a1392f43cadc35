"""Feast's ``feast.data_format``: the stream message formats (banquet's ``KafkaSource``
formats) and ``ParquetFormat`` for ``FileSource(file_format=...)``."""

from __future__ import annotations

from banquet.data_format import AvroFormat, JsonFormat, StreamFormat
from feast._forward import forward


class FileFormat:
    """Feast's base of file formats; banquet's ``FileSource`` reads Parquet only."""

    name = ""

    def __str__(self) -> str:
        return self.name  # FileSource compares str(file_format) with "parquet"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(self.name)


class ParquetFormat(FileFormat):
    """``FileSource(path=..., file_format=ParquetFormat())`` as in Feast's docs."""

    name = "parquet"


__all__ = ["AvroFormat", "FileFormat", "JsonFormat", "ParquetFormat", "StreamFormat"]
__getattr__ = forward(__name__, "banquet.data_format", "banquet.stream.source")
