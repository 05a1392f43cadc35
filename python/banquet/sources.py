"""Data sources: where a feature view's rows come from.

``FileSource`` (Parquet file or directory), ``PostgreSQLSource`` (a table or a query),
``PushSource`` (rows pushed by clients, backed by a batch source) and ``RequestSource``
(values that arrive with an online request, for on-demand features).
"""

from __future__ import annotations

from typing import Any, ClassVar

from banquet._naming import check_name, check_tags, drop_empty
from banquet.errors import DefinitionError
from banquet.field import Field


class DataSource:
    """Base class. ``field_mapping`` renames source columns: ``{"source_col": "feature"}``."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        *,
        name: str,
        timestamp_field: str = "",
        created_timestamp_column: str = "",
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = check_name(type(self).__name__, name)
        where = f"{type(self).__name__} {name!r}"
        self.timestamp_field = timestamp_field or ""
        self.created_timestamp_column = created_timestamp_column or ""
        mapping = dict(field_mapping or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise DefinitionError(f"{where}: field_mapping must map str to str")
        if len(set(mapping.values())) != len(mapping):
            raise DefinitionError(f"{where}: field_mapping maps two columns to one name")
        self.field_mapping = mapping
        self.description = description
        self.tags = check_tags(where, tags)
        self.owner = owner

    @property
    def batch(self) -> DataSource:
        """The source historical reads and materialization use (a push source's batch source)."""
        return self

    def source_column(self, name: str) -> str:
        """The column in the source that feeds the feature or key called ``name``."""
        for src, dst in self.field_mapping.items():
            if dst == name:
                return src
        return name

    def _common(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_column": self.created_timestamp_column,
            "field_mapping": self.field_mapping,
            "description": self.description,
            "tags": self.tags,
            "owner": self.owner,
        }

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(self._common())

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DataSource:
        cls = _KINDS[d["kind"]]
        kwargs = {k: v for k, v in d.items() if k != "kind"}
        if cls is PushSource:
            kwargs["batch_source"] = DataSource.from_dict(kwargs["batch_source"])
        if cls is RequestSource:
            kwargs["schema"] = [Field.from_dict(f) for f in kwargs["schema"]]
        return cls(**kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataSource) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.kind, self.name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class FileSource(DataSource):
    """A Parquet file, or a directory of Parquet files (a partitioned dataset).

    A relative ``path`` is read relative to the feature repository. ``path`` may be an S3 URL
    (``s3://bucket/key.parquet`` or ``s3://bucket/prefix/``); ``s3_endpoint_override`` (Feast's
    name) then points at an S3-compatible server instead of AWS (``http://127.0.0.1:9000``).
    """

    kind = "file"

    def __init__(
        self,
        *,
        path: str,
        name: str | None = None,
        timestamp_field: str = "",
        created_timestamp_column: str = "",
        field_mapping: dict[str, str] | None = None,
        file_format: str = "parquet",
        s3_endpoint_override: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        if not isinstance(path, str) or not path:
            raise DefinitionError(f"FileSource {name!r}: path must be a non-empty string")
        endpoint = _check_endpoint(name or path, path, s3_endpoint_override)
        if str(file_format).lower() != "parquet":
            raise DefinitionError(
                f"FileSource {name or path!r}: only Parquet is supported, got {file_format!r}"
            )
        super().__init__(
            name=name or _name_from_path(path),
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )
        self.path = path
        self.s3_endpoint_override = endpoint

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {**self._common(), "path": self.path, "s3_endpoint_override": self.s3_endpoint_override}
        )


class PostgreSQLSource(DataSource):
    """A Postgres table (``table=``) or the result of a query (``query=``)."""

    kind = "postgres"

    def __init__(
        self,
        *,
        name: str,
        query: str | None = None,
        table: str | None = None,
        timestamp_field: str = "",
        created_timestamp_column: str = "",
        field_mapping: dict[str, str] | None = None,
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
        if bool(query) == bool(table):
            raise DefinitionError(
                f"PostgreSQLSource {name!r}: give exactly one of table= or query="
            )
        self.query = query or ""
        self.table = table or ""

    def to_dict(self) -> dict[str, Any]:
        return drop_empty({**self._common(), "query": self.query, "table": self.table})


class PushSource(DataSource):
    """Rows pushed by clients (``FeatureStore.push``); historical reads use ``batch_source``."""

    kind = "push"

    def __init__(
        self,
        *,
        name: str,
        batch_source: DataSource,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        if not isinstance(batch_source, DataSource) or isinstance(
            batch_source, (PushSource, RequestSource)
        ):
            raise DefinitionError(
                f"PushSource {name!r}: batch_source must be a FileSource or PostgreSQLSource"
            )
        super().__init__(
            name=name,
            timestamp_field=batch_source.timestamp_field,
            created_timestamp_column=batch_source.created_timestamp_column,
            field_mapping=batch_source.field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )
        self.batch_source = batch_source

    @property
    def batch(self) -> DataSource:
        return self.batch_source

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "kind": self.kind,
                "name": self.name,
                "batch_source": self.batch_source.to_dict(),
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
            }
        )


class RequestSource(DataSource):
    """Fields that arrive with each online request, used by on-demand feature views."""

    kind = "request"

    def __init__(
        self,
        *,
        name: str,
        schema: list[Field],
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        super().__init__(name=name, description=description, tags=tags, owner=owner)
        if not schema or not all(isinstance(f, Field) for f in schema):
            raise DefinitionError(
                f"RequestSource {name!r}: schema must be a non-empty list of Field"
            )
        self.schema = list(schema)

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "kind": self.kind,
                "name": self.name,
                "schema": [f.to_dict() for f in self.schema],
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
            }
        )


def _check_endpoint(where: str, path: str, endpoint: str | None) -> str:
    """``s3_endpoint_override``: an http(s) URL or host[:port], only beside an s3:// path, and
    never with credentials in it (they come from the environment or an AWS profile)."""
    if endpoint is None or endpoint == "":
        return ""
    if not isinstance(endpoint, str) or any(c.isspace() for c in endpoint):
        raise DefinitionError(
            f"FileSource {where!r}: s3_endpoint_override must be a URL such as "
            "'http://127.0.0.1:9000'"
        )
    if not path[:5].lower() == "s3://":
        raise DefinitionError(
            f"FileSource {where!r}: s3_endpoint_override is set but path {path!r} is not an "
            "s3:// URL; remove it or use an s3://bucket/key path"
        )
    scheme, sep, rest = endpoint.partition("://")
    if sep and scheme.lower() not in ("http", "https"):
        raise DefinitionError(
            f"FileSource {where!r}: s3_endpoint_override must start with http:// or https://, "
            f"not {scheme}://"
        )
    if "@" in (rest if sep else endpoint).split("/", 1)[0]:
        raise DefinitionError(
            f"FileSource {where!r}: s3_endpoint_override must not hold credentials; they come "
            "from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile"
        )
    return endpoint


def _name_from_path(path: str) -> str:
    stem = path.rstrip("/").rsplit("/", 1)[-1]
    stem = stem[: -len(".parquet")] if stem.endswith(".parquet") else stem
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in stem)
    return cleaned if cleaned[:1].isalpha() or cleaned[:1] == "_" else f"_{cleaned}"


_KINDS: dict[str, type[DataSource]] = {
    c.kind: c for c in (FileSource, PostgreSQLSource, PushSource, RequestSource)
}
