"""``SparkSource``: a Spark table, files Spark reads (``path`` + ``file_format``) or a Spark
SQL query, with Feast's argument names. Nothing here imports pyspark: a repo defining Spark
sources loads (and its registry records them) on machines without Spark."""

from __future__ import annotations

from typing import Any

from banquet import sources
from banquet._naming import drop_empty
from banquet.errors import DefinitionError
from banquet.sources import DataSource

FILE_FORMATS = ("parquet", "orc", "csv", "json", "avro", "delta")


class SparkSource(DataSource):
    """Exactly one of ``table=`` (a catalog table), ``path=`` (files; ``file_format``, default
    parquet; a relative path is read relative to the feature repository) or ``query=`` (Spark
    SQL). Read only by the Spark offline store."""

    kind = "spark"

    def __init__(
        self,
        *,
        name: str,
        table: str | None = None,
        query: str | None = None,
        path: str | None = None,
        file_format: str | None = None,
        timestamp_field: str = "",
        created_timestamp_column: str = "",
        field_mapping: dict[str, str] | None = None,
        date_partition_column: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        super().__init__(
            name=name,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )
        given = [k for k, v in (("table", table), ("query", query), ("path", path)) if v]
        if len(given) != 1:
            raise DefinitionError(
                f"SparkSource {name!r}: give exactly one of table=, path= or query= "
                f"(got {given or 'none'})"
            )
        for key, value in (("table", table), ("query", query), ("path", path)):
            if value is not None and not isinstance(value, str):
                raise DefinitionError(f"SparkSource {name!r}: {key}= must be a string")
        fmt = (file_format or "").lower()
        if fmt and not path:
            raise DefinitionError(
                f"SparkSource {name!r}: file_format= goes with path= only; remove it"
            )
        if path and not fmt:
            fmt = "parquet"
        if fmt and fmt not in FILE_FORMATS:
            raise DefinitionError(
                f"SparkSource {name!r}: file_format {file_format!r} is not one of {FILE_FORMATS}"
            )
        if not timestamp_field:
            raise DefinitionError(
                f"SparkSource {name!r}: timestamp_field= is required (the event time column)"
            )
        self.table = table or ""
        self.query = query or ""
        self.path = path or ""
        self.file_format = fmt
        self.date_partition_column = date_partition_column or ""

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                **self._common(),
                "table": self.table,
                "query": self.query,
                "path": self.path,
                "file_format": self.file_format,
                "date_partition_column": self.date_partition_column,
            }
        )

    def describe(self) -> str:
        """The source for error messages: its name and where it reads."""
        if self.table:
            return f"source {self.name!r} (table {self.table})"
        if self.path:
            return f"source {self.name!r} ({self.file_format} at {self.path})"
        return f"source {self.name!r} (query)"


# Registry records of kind "spark" load back as SparkSource (banquet/__init__ imports this).
sources._KINDS.setdefault(SparkSource.kind, SparkSource)
