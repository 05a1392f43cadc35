"""``KafkaSource`` and its message formats (``JsonFormat``, ``AvroFormat``), Feast's names.

A Kafka source describes a topic that ``banquet ingest`` consumes into the online store. It
always has a ``batch_source`` (a FileSource, PostgreSQLSource ...): historical retrieval and
materialization read that one, and ``banquet ingest --to online_and_offline`` appends to it.
Nothing here imports the Kafka client: a repo defining Kafka sources loads anywhere.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from banquet import sources
from banquet._naming import drop_empty
from banquet.errors import DefinitionError
from banquet.sources import DataSource, PushSource, RequestSource


class StreamFormat:
    """How a message's value is encoded."""

    kind = ""

    def __init__(self, schema_json: str = "") -> None:
        self.schema_json = schema_json or ""

    def to_dict(self) -> dict[str, Any]:
        return drop_empty({"kind": self.kind, "schema_json": self.schema_json})

    @staticmethod
    def from_dict(d: dict[str, Any]) -> StreamFormat:
        cls = {"json": JsonFormat, "avro": AvroFormat}.get(d.get("kind", ""))
        if cls is None:
            raise DefinitionError(f"unknown message format {d.get('kind')!r}: use json or avro")
        return cls(schema_json=d.get("schema_json", ""))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamFormat) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.kind, self.schema_json))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class JsonFormat(StreamFormat):
    """One JSON object per message. Field types come from the feature view's schema;
    ``schema_json`` (Feast's Spark DDL text) is kept in the registry for reference only."""

    kind = "json"


class AvroFormat(StreamFormat):
    """One Avro record per message, plain binary encoding (no container header, no schema
    registry prefix), written with the writer schema ``schema_json`` (an Avro schema as JSON
    text; required)."""

    kind = "avro"

    def __init__(self, schema_json: str = "") -> None:
        super().__init__(schema_json)
        try:
            parsed = json.loads(self.schema_json) if self.schema_json else None
        except ValueError as e:
            raise DefinitionError(f"AvroFormat: schema_json is not JSON: {e}") from None
        if not isinstance(parsed, dict) or parsed.get("type") != "record":
            raise DefinitionError(
                "AvroFormat: schema_json must be an Avro record schema as JSON text, e.g. "
                '\'{"type": "record", "name": "tx", "fields": [...]}\''
            )


class KafkaSource(DataSource):
    """A Kafka topic. ``timestamp_field`` names the message field holding the event time (an
    ISO 8601 string or a number of seconds since the Unix epoch); ``field_mapping`` renames
    message fields to feature names; ``watermark_delay_threshold`` is recorded (ingest keeps
    every event: the online store's newer-event-wins rule makes late events harmless)."""

    kind = "kafka"

    def __init__(
        self,
        *,
        name: str,
        kafka_bootstrap_servers: str = "",
        topic: str = "",
        timestamp_field: str = "",
        message_format: StreamFormat | dict[str, Any] | None = None,
        batch_source: DataSource | dict[str, Any] | None = None,
        watermark_delay_threshold: timedelta | None = None,
        created_timestamp_column: str = "",
        field_mapping: dict[str, str] | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
        watermark_delay_threshold_us: int | None = None,  # the registry form
        bootstrap_servers: str | None = None,  # Feast's older spelling
    ) -> None:
        where = f"KafkaSource {name!r}"
        servers = kafka_bootstrap_servers or bootstrap_servers or ""
        if not isinstance(servers, str) or not servers.strip():
            raise DefinitionError(
                f"{where}: kafka_bootstrap_servers must name the brokers, e.g. "
                "'127.0.0.1:9092' or 'host1:9092,host2:9092'"
            )
        if not isinstance(topic, str) or not topic:
            raise DefinitionError(f"{where}: topic must be a non-empty string")
        if not timestamp_field:
            raise DefinitionError(
                f"{where}: timestamp_field= is required (the message field with the event time)"
            )
        if isinstance(message_format, dict):
            message_format = StreamFormat.from_dict(message_format)
        if message_format is None:
            message_format = JsonFormat()
        if not isinstance(message_format, StreamFormat):
            raise DefinitionError(
                f"{where}: message_format must be JsonFormat(...) or AvroFormat(...) from "
                f"banquet.data_format, got {message_format!r}"
            )
        if isinstance(batch_source, dict):
            batch_source = DataSource.from_dict(batch_source)
        if batch_source is None:
            raise DefinitionError(
                f"{where}: batch_source= is required: the offline source (a FileSource, "
                "PostgreSQLSource ...) that historical retrieval and materialization read"
            )
        if not isinstance(batch_source, DataSource) or isinstance(
            batch_source, (PushSource, RequestSource, KafkaSource)
        ):
            raise DefinitionError(
                f"{where}: batch_source must be an offline source (FileSource, "
                f"PostgreSQLSource, SparkSource), got {batch_source!r}"
            )
        if not batch_source.timestamp_field:
            raise DefinitionError(
                f"{where}: batch_source {batch_source.name!r} has no timestamp_field; set it"
            )
        super().__init__(
            name=name,
            timestamp_field=timestamp_field,
            created_timestamp_column=created_timestamp_column,
            field_mapping=field_mapping,
            description=description,
            tags=tags,
            owner=owner,
        )
        self.kafka_bootstrap_servers = servers.strip()
        self.topic = topic
        self.message_format = message_format
        self.batch_source = batch_source
        if watermark_delay_threshold_us is None and watermark_delay_threshold is not None:
            if not isinstance(watermark_delay_threshold, timedelta):
                raise DefinitionError(f"{where}: watermark_delay_threshold must be a timedelta")
            watermark_delay_threshold_us = watermark_delay_threshold // timedelta(microseconds=1)
        self.watermark_delay_threshold_us = watermark_delay_threshold_us

    @property
    def batch(self) -> DataSource:
        return self.batch_source

    @property
    def watermark_delay_threshold(self) -> timedelta | None:
        us = self.watermark_delay_threshold_us
        return None if us is None else timedelta(microseconds=us)

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                **self._common(),
                "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
                "topic": self.topic,
                "message_format": self.message_format.to_dict(),
                "batch_source": self.batch_source.to_dict(),
                "watermark_delay_threshold_us": self.watermark_delay_threshold_us,
            }
        )


# Registry records of kind "kafka" load back as KafkaSource (banquet/__init__ imports this).
sources._KINDS.setdefault(KafkaSource.kind, KafkaSource)
