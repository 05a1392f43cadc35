"""``StreamFeatureView``: a feature view fed by a ``KafkaSource`` through ``banquet ingest``.

It is a ``FeatureView`` (registered, listed, materialized and retrieved like one: historical
reads use the source's ``batch_source``) plus an optional per-micro-batch transformation
``udf`` that ``banquet ingest`` applies before each online write. ``mode`` says what the
function receives and returns: ``"pandas"`` (a DataFrame; the default), ``"pyarrow"`` (a
``pyarrow.Table``) or ``"python"`` (a dict of column lists). The function is stored in the
registry as source text and runs only where it is trusted (``banquet.trust``), like an
on-demand view's. It is kept as ``stream_udf`` (an attribute named ``udf`` marks an
on-demand view to the request planner).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from banquet._naming import drop_empty
from banquet.aggregation import Aggregation
from banquet.entity import Entity
from banquet.errors import DefinitionError
from banquet.feature_view import FeatureView
from banquet.field import Field
from banquet.sources import DataSource
from banquet.stream.source import KafkaSource
from banquet.udf import UserFunction

MODES = ("pandas", "pyarrow", "python")


class StreamFeatureView(FeatureView):
    """Features computed from a Kafka topic.

    >>> from banquet import Entity, Field, FileSource, KafkaSource, StreamFeatureView
    >>> from banquet.data_format import JsonFormat
    >>> from banquet.types import Float64
    >>> user = Entity(name="user", join_keys=["user_id"])
    >>> src = KafkaSource(name="tx_stream", kafka_bootstrap_servers="127.0.0.1:9092",
    ...                   topic="tx", timestamp_field="ts", message_format=JsonFormat(),
    ...                   batch_source=FileSource(path="tx.parquet", timestamp_field="ts"))
    >>> sfv = StreamFeatureView(name="tx_live", entities=[user], source=src,
    ...                         schema=[Field(name="amount", dtype=Float64)])
    >>> sfv.source.topic
    'tx'
    """

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
        udf: Callable[..., Any] | UserFunction | None = None,
        mode: str = "pandas",
        aggregations: Sequence[Aggregation] | None = None,
        timestamp_field: str = "",
        udf_string: str = "",
    ) -> None:
        where = f"StreamFeatureView {name!r}"
        if not isinstance(source, KafkaSource):
            raise DefinitionError(
                f"{where}: source must be a KafkaSource (for other sources use FeatureView), "
                f"got {source!r}"
            )
        if mode not in MODES:
            raise DefinitionError(
                f"{where}: mode must be one of {MODES} (banquet ingest runs the udf in "
                f"Python on each micro-batch; Spark is not used), got {mode!r}"
            )
        if timestamp_field and timestamp_field != source.timestamp_field:
            raise DefinitionError(
                f"{where}: timestamp_field {timestamp_field!r} differs from the source's "
                f"{source.timestamp_field!r}; leave it out or make them equal"
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
            aggregations=aggregations,
        )
        self.mode = mode
        self.udf_string = udf_string or ""
        if udf is None or isinstance(udf, UserFunction):
            self.stream_udf = udf
        elif callable(udf):
            self.stream_udf = UserFunction.capture(udf, f"stream feature view {name!r}")
        else:
            raise DefinitionError(f"{where}: udf must be a function, got {udf!r}")

    @property
    def stream_source(self) -> KafkaSource:
        assert isinstance(self.source, KafkaSource)
        return self.source

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["stream"] = drop_empty(
            {
                "mode": self.mode,
                "udf": self.stream_udf.record() if self.stream_udf is not None else None,
                "udf_string": self.udf_string,
            }
        )
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], entities: Mapping[str, Entity]) -> StreamFeatureView:
        base = FeatureView.from_dict({k: v for k, v in d.items() if k != "stream"}, entities)
        stream = d.get("stream") or {}
        record = stream.get("udf")
        udf = (
            UserFunction.from_record(record, f"stream feature view {d['name']!r}", view=d["name"])
            if record
            else None
        )
        return cls(
            name=base.name,
            source=base.source,
            schema=base.schema,
            entities=base.entities,
            ttl=base.ttl,
            online=base.online,
            offline=base.offline,
            description=base.description,
            tags=base.tags,
            owner=base.owner,
            aggregations=base.aggregations,
            udf=udf,
            mode=stream.get("mode", "pandas"),
            udf_string=stream.get("udf_string", ""),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamFeatureView) and super().__eq__(other)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return (
            f"StreamFeatureView(name={self.name!r}, topic={self.stream_source.topic!r}, "
            f"features={[f.name for f in self.features]})"
        )
