"""Feast's ``feast.data_format`` names: the message formats of a ``KafkaSource``."""

from __future__ import annotations

from banquet.stream.source import AvroFormat, JsonFormat, StreamFormat

__all__ = ["AvroFormat", "JsonFormat", "StreamFormat"]
