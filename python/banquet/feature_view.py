"""``FeatureView``: a group of features read from one source, keyed by entities."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from banquet import types
from banquet._naming import check_name, check_tags, check_unique, drop_empty, ttl_to_us, us_to_ttl
from banquet.aggregation import Aggregation
from banquet.entity import Entity
from banquet.errors import (
    DefinitionError,
    FeatureNotFound,
    FeatureViewNotFound,
    NotSupportedError,
)
from banquet.field import Field
from banquet.sources import DataSource, RequestSource
from banquet.versions import check_version


class Projection:
    """How a view is used in one request: an alias, a subset of features, renamed join keys."""

    __slots__ = ("name_alias", "features", "join_key_map")

    def __init__(
        self,
        name_alias: str | None = None,
        features: list[str] | None = None,
        join_key_map: dict[str, str] | None = None,
    ) -> None:
        self.name_alias = name_alias
        self.features = features
        self.join_key_map = dict(join_key_map or {})

    def is_default(self) -> bool:
        return self.name_alias is None and self.features is None and not self.join_key_map


_P = TypeVar("_P", bound="Projectable")


class Projectable:
    """What plain and on-demand feature views share: how a request uses them (an alias, a
    subset of features, renamed join keys) and how that use is recorded."""

    name: str
    features: list[Field]
    projection: Projection
    kind = "feature view"  # how errors name it

    @property
    def projected_name(self) -> str:
        return self.projection.name_alias or self.name

    @property
    def projected_features(self) -> list[Field]:
        if self.projection.features is None:
            return self.features
        by_name = {f.name: f for f in self.features}
        return [by_name[n] for n in self.projection.features]

    def feature(self, name: str) -> Field:
        for f in self.features:
            if f.name == name:
                return f
        raise FeatureNotFound(
            f"{self.kind} {self.name!r} has no feature {name!r}; it has "
            f"{[f.name for f in self.features]}"
        )

    def _copy(self: _P) -> _P:
        new = copy.copy(self)
        new.projection = copy.copy(self.projection)
        return new

    def without_projection(self: _P) -> _P:
        """The view itself, as registered (no alias, feature subset or key map)."""
        new = self._copy()
        new.projection = Projection()
        return new

    def __getitem__(self: _P, names: Sequence[str]) -> _P:
        """``fv[["a", "b"]]``: the same view restricted to some features."""
        if isinstance(names, str):
            names = [names]
        for n in names:
            self.feature(n)
        new = self._copy()
        new.projection.features = list(names)
        return new

    def with_name(self: _P, name: str) -> _P:
        """The same view under another name in requests (``alias:feature``, output prefix)."""
        new = self._copy()
        new.projection.name_alias = check_name(f"{self.kind} alias", name)
        return new

    def with_join_key_map(self: _P, join_key_map: Mapping[str, str]) -> _P:
        raise NotImplementedError

    def projection_dict(self) -> dict[str, Any]:
        p = self.projection
        return drop_empty(
            {
                "view": self.name,
                "alias": p.name_alias,
                "features": p.features,
                "join_key_map": p.join_key_map,
            }
        )


def projected(
    views: Mapping[str, _P], record: Mapping[str, Any], missing: Callable[[str], str]
) -> _P:
    """The view a ``projection_dict`` record names, with its projection applied; ``missing``
    words the error when the view is not registered."""
    if record["view"] not in views:
        raise FeatureViewNotFound(missing(record["view"]))
    v = views[record["view"]]
    if record.get("features") is not None:
        v = v[record["features"]]
    if record.get("alias"):
        v = v.with_name(record["alias"])
    if record.get("join_key_map"):
        v = v.with_join_key_map(record["join_key_map"])
    return v


class FeatureView(Projectable):
    """Features of one or more entities, read from ``source``.

    >>> from banquet import Entity, FeatureView, Field, FileSource
    >>> from banquet.types import Float32
    >>> user = Entity(name="user", join_keys=["user_id"])
    >>> src = FileSource(path="data/tx.parquet", timestamp_field="event_timestamp")
    >>> fv = FeatureView(name="tx", entities=[user], source=src,
    ...                  schema=[Field(name="avg_spend", dtype=Float32)])
    >>> [f.name for f in fv.features]
    ['avg_spend']
    """

    # The online storage generation's name when it is not ``name`` (set by the registry's
    # Catalog; see ``storage_name``).
    storage: str | None = None

    def __init__(
        self,
        *,
        name: str,
        source: DataSource,
        schema: Sequence[Field] | None = None,
        entities: Sequence[Entity] | None = None,
        ttl: timedelta | None = None,
        online: bool = True,
        offline: bool = True,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
        enable_validation: bool = False,
        version: str = "latest",
        aggregations: Sequence[Aggregation] | None = None,
    ) -> None:
        self.name = check_name("FeatureView", name)
        where = f"{type(self).__name__} {name!r}"
        # Feast's flags: banquet always checks types when it materializes or pushes
        # (enable_validation is kept, changes nothing); only the latest definition is
        # served (version: "latest", or "vN" naming the current generation: versions.py)
        self.enable_validation = bool(enable_validation)
        self.version = check_version(where, version)
        if not isinstance(source, DataSource) or isinstance(source, RequestSource):
            raise DefinitionError(
                f"{where}: source must be a FileSource, PostgreSQLSource or PushSource, "
                f"got {source!r}"
            )
        if not source.batch.timestamp_field:
            raise DefinitionError(
                f"{where}: source {source.batch.name!r} has no timestamp_field; set "
                "timestamp_field= on the source to the column holding each row's event time"
            )
        self.source = source
        entities = list(entities or [])
        if not entities:
            raise DefinitionError(f"{where}: entities must list at least one Entity")
        for e in entities:
            if not isinstance(e, Entity):
                raise DefinitionError(f"{where}: entities must be Entity objects, got {e!r}")
        check_unique("entity", where, [e.name for e in entities])
        check_unique("join key", where, [e.join_key for e in entities])
        self.entities = entities

        fields = list(schema or [])
        for f in fields:
            if not isinstance(f, Field):
                raise DefinitionError(f"{where}: schema must be a list of Field, got {f!r}")
        check_unique("field", where, [f.name for f in fields])
        by_key = {e.join_key: e for e in entities}
        reserved = {source.batch.timestamp_field, source.batch.created_timestamp_column} - {""}
        self.entity_columns: list[Field] = []
        self.features: list[Field] = []
        for f in fields:
            if f.name in by_key:
                ent = by_key[f.name]
                if ent.dtype is not None and ent.dtype != f.dtype:
                    raise DefinitionError(
                        f"{where}: field {f.name!r} has the name of entity {ent.name!r}'s join "
                        f"key but dtype {f.dtype} instead of the entity's {ent.dtype}; rename "
                        "the feature or give it the entity's type"
                    )
                self.entity_columns.append(f)
            elif f.name in reserved:
                raise DefinitionError(
                    f"{where}: feature {f.name!r} has the name of the source's timestamp "
                    "column; timestamps are not features, remove it from the schema"
                )
            else:
                self.features.append(f)
        for key, ent in by_key.items():
            if ent.dtype is not None and key not in {c.name for c in self.entity_columns}:
                self.entity_columns.append(Field(name=key, dtype=ent.dtype))
        self.aggregations: list[Aggregation] = list(aggregations or [])
        self._source_fields: list[Field] | None = None
        if self.aggregations:
            self._source_fields = self.features
            self.features = _aggregated_features(where, self.aggregations, self.features)
        self.ttl_us = ttl_to_us(where, ttl)
        self.online = bool(online)
        self.offline = bool(offline)
        self.description = description
        self.tags = check_tags(where, tags)
        self.owner = owner
        self.projection = Projection()

    # --- Feast-style accessors -----------------------------------------------------------

    @property
    def ttl(self) -> timedelta | None:
        return us_to_ttl(self.ttl_us)

    @property
    def join_keys(self) -> list[str]:
        """Join keys as named in the source."""
        return [e.join_key for e in self.entities]

    @property
    def schema(self) -> list[Field]:
        """Entity columns, then the source columns the view reads (as in Feast: for an
        aggregated view, the columns it aggregates, not the aggregates)."""
        return self.entity_columns + self.source_fields

    @property
    def source_fields(self) -> list[Field]:
        """The source's value columns the view reads: its features, or for an aggregated
        view the columns its aggregations take."""
        return self.features if self._source_fields is None else self._source_fields

    @property
    def is_aggregated(self) -> bool:
        return bool(self.aggregations)

    @property
    def batch_source(self) -> DataSource:
        return self.source.batch

    @property
    def storage_name(self) -> str:
        """The name the online store keeps this view's rows under: the view's name, or
        ``<name>@<n>`` once an apply changed its shape (ARCHITECTURE.md, "Data flow: apply")."""
        return self.storage or self.name

    def value_schema(self) -> Any:
        """The Arrow schema of the view's features as the online value codec stores them."""
        schema = self._value_schema
        if schema is None:
            import pyarrow as pa

            schema = pa.schema([pa.field(f.name, f.dtype.to_arrow()) for f in self.features])
            self._value_schema = schema
        return schema

    def key_dtype(self, join_key: str) -> types.BanquetType | None:
        for c in self.entity_columns:
            if c.name == join_key:
                return c.dtype
        return None

    # --- projections (shared ones in Projectable) -----------------------------------------

    def entity_column(self, join_key: str) -> str:
        """The entity-row column that feeds ``join_key`` (after ``with_join_key_map``)."""
        return self.projection.join_key_map.get(join_key, join_key)

    def with_join_key_map(self, join_key_map: Mapping[str, str]) -> FeatureView:
        """Read join key ``k`` from entity column ``join_key_map[k]``."""
        unknown = set(join_key_map) - set(self.join_keys)
        if unknown:
            raise DefinitionError(
                f"FeatureView {self.name!r}: with_join_key_map names {sorted(unknown)}, which "
                f"are not join keys; the join keys are {self.join_keys}"
            )
        new = self._copy()
        new.projection.join_key_map = dict(join_key_map)
        return new

    # --- registry form -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "name": self.name,
                "entities": [e.name for e in self.entities],
                "entity_columns": [f.to_dict() for f in self.entity_columns],
                # the source columns read (for an aggregated view, the aggregated ones; its
                # features follow from "aggregations")
                "features": [f.to_dict() for f in self.source_fields],
                "aggregations": [a.to_dict() for a in self.aggregations],
                "source": self.source.to_dict(),
                "ttl_us": self.ttl_us,
                "online": self.online,
                "offline": None if self.offline else False,
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
                "enable_validation": self.enable_validation or None,
                "version": None if self.version == "latest" else self.version,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any], entities: Mapping[str, Entity]) -> FeatureView:
        if d.get("label") is not None:  # a LabelView's record (banquet.labeling)
            from banquet.labeling import LabelView

            return LabelView.from_dict(d, entities)
        if d.get("stream") is not None:  # a StreamFeatureView's record (banquet.stream)
            from banquet.stream.view import StreamFeatureView

            return StreamFeatureView.from_dict(d, entities)
        if d.get("batch") and cls is FeatureView:
            return BatchFeatureView.from_dict(d, entities)
        fields = [Field.from_dict(f) for f in d.get("entity_columns", []) + d.get("features", [])]
        return cls(
            name=d["name"],
            source=DataSource.from_dict(d["source"]),
            schema=fields,
            entities=[entities[n] for n in d["entities"]],
            ttl=us_to_ttl(d.get("ttl_us")),
            online=d.get("online", False),
            offline=d.get("offline", True),
            description=d.get("description", ""),
            tags=d.get("tags"),
            owner=d.get("owner", ""),
            enable_validation=d.get("enable_validation", False),
            version=d.get("version", "latest"),
            aggregations=[Aggregation.from_dict(a) for a in d.get("aggregations", [])],
        )

    _value_schema: Any = None  # value_schema(), built on first use (copies share it)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FeatureView)
            and self.to_dict() == other.to_dict()
            and self.projection_dict() == other.projection_dict()
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"FeatureView(name={self.name!r}, features={[f.name for f in self.features]})"


def _aggregated_features(
    where: str, aggregations: list[Aggregation], source_fields: list[Field]
) -> list[Field]:
    """The features an aggregated view serves, one per aggregation. As in Feast (whose
    aggregation step outputs only the keys and the aggregates), such a view serves no plain
    features: every schema field that is not a join key must be an aggregated column."""
    by_name = {f.name: f for f in source_fields}
    out: list[Field] = []
    for a in aggregations:
        if not isinstance(a, Aggregation):
            raise DefinitionError(
                f"{where}: aggregations must be banquet.aggregation.Aggregation objects, got {a!r}"
            )
        col = by_name.get(a.column)
        if col is None:
            raise DefinitionError(
                f"{where}: aggregation {a.feature_name!r} aggregates column {a.column!r}, "
                f"which the schema does not list; add Field(name={a.column!r}, dtype=...) "
                "to the schema (it lists the source columns the view aggregates)"
            )
        out.append(Field(name=a.feature_name, dtype=a.output_type(col.dtype, where)))
    check_unique("aggregated feature", where, [f.name for f in out])
    plain = sorted(set(by_name) - {a.column for a in aggregations})
    if plain:
        raise DefinitionError(
            f"{where}: schema fields {plain} are neither join keys nor aggregated columns; "
            "a view with aggregations serves only its aggregates (as in Feast). Move plain "
            "features to another FeatureView on the same source"
        )
    return out


class BatchFeatureView(FeatureView):
    """Feast's ``BatchFeatureView``: a ``FeatureView`` over a batch source, usually with
    ``aggregations``. Transformations (``udf``, ``feature_transformation``) are not
    supported; use an on-demand view or transform upstream.

    >>> from datetime import timedelta
    >>> from banquet import BatchFeatureView, Entity, Field, FileSource
    >>> from banquet.aggregation import Aggregation
    >>> from banquet.types import Float64
    >>> user = Entity(name="user", join_keys=["user_id"])
    >>> src = FileSource(path="tx.parquet", timestamp_field="ts")
    >>> bfv = BatchFeatureView(name="tx_agg", entities=[user], source=src,
    ...     schema=[Field(name="amount", dtype=Float64)],
    ...     aggregations=[Aggregation(column="amount", function="sum",
    ...                               time_window=timedelta(days=1))])
    >>> [(f.name, str(f.dtype)) for f in bfv.features]
    [('sum_amount_86400s', 'Float64')]
    """

    def __init__(
        self,
        *,
        name: str,
        source: DataSource,
        schema: Sequence[Field] | None = None,
        entities: Sequence[Entity] | None = None,
        aggregations: Sequence[Aggregation] | None = None,
        ttl: timedelta | None = None,
        online: bool = True,
        offline: bool = True,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
        udf: Any = None,
        udf_string: str = "",
        feature_transformation: Any = None,
        mode: str = "python",
        enable_validation: bool = False,
        version: str = "latest",
    ) -> None:
        if udf is not None or udf_string or feature_transformation is not None:
            raise NotSupportedError(
                f"BatchFeatureView {name!r}: udf / feature_transformation are not supported; "
                "transform upstream of the source or use an on-demand feature view"
            )
        super().__init__(
            name=name,
            source=source,
            schema=schema,
            entities=entities,
            ttl=ttl,
            online=online,
            offline=offline,
            description=description,
            tags=tags,
            owner=owner,
            enable_validation=enable_validation,
            version=version,
            aggregations=aggregations,
        )
        self.mode = mode

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["batch"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], entities: Mapping[str, Entity]) -> BatchFeatureView:
        return super().from_dict({k: v for k, v in d.items() if k != "batch"}, entities)  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BatchFeatureView) and super().__eq__(other)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"BatchFeatureView(name={self.name!r}, features={[f.name for f in self.features]})"
