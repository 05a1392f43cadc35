"""Streaming ingestion: Kafka sources, stream feature views and ``banquet ingest``.

* ``source.py``  KafkaSource, JsonFormat, AvroFormat (definitions; no Kafka client import)
* ``view.py``    StreamFeatureView (a FeatureView with an optional per-batch ``udf``)
* ``decode.py``  message values -> one Arrow table per micro-batch (bad messages set aside)
* ``batch.py``   decoded rows -> checked rows for the online write (bad rows set aside)
* ``dlq.py``     the dead-letter topic (reason in a header) or log-and-skip
* ``metrics.py`` Prometheus ``/metrics`` of the ingest process, the progress line
* ``consumer.py`` the consumer loop per view (``banquet ingest``)
"""

from __future__ import annotations

from banquet.stream.source import AvroFormat, JsonFormat, KafkaSource, StreamFormat
from banquet.stream.view import StreamFeatureView

__all__ = ["AvroFormat", "JsonFormat", "KafkaSource", "StreamFeatureView", "StreamFormat"]
