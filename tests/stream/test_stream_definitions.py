"""KafkaSource / StreamFeatureView definitions: Feast's names, typed errors, registry round
trip, apply (batch_source columns checked), listing. No broker needed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stream_support import AVRO_SCHEMA, make_repo

from banquet import Entity, FeatureStore, Field, FileSource, KafkaSource, StreamFeatureView
from banquet.data_format import AvroFormat, JsonFormat
from banquet.errors import DefinitionError, SourceColumnMissing
from banquet.feature_view import FeatureView
from banquet.sources import DataSource, PushSource
from banquet.types import Float64

USER = Entity(name="user", join_keys=["user_id"])
BATCH = FileSource(name="b", path="b.parquet", timestamp_field="event_timestamp")


def kafka(**kw: object) -> KafkaSource:
    args: dict[str, object] = dict(
        name="s", kafka_bootstrap_servers="127.0.0.1:9092", topic="t", timestamp_field="ts",
        message_format=JsonFormat(), batch_source=BATCH,
    )  # fmt: skip
    args.update(kw)
    return KafkaSource(**args)  # type: ignore[arg-type]


def double(df):  # type: ignore[no-untyped-def]
    df["amount"] = df["amount"] * 2
    return df


def test_feast_names_and_registry_round_trip() -> None:
    src = kafka(
        message_format=AvroFormat(schema_json=json.dumps(AVRO_SCHEMA)),
        watermark_delay_threshold=timedelta(minutes=5),
        field_mapping={"amt": "amount"},
    )
    back = DataSource.from_dict(src.to_dict())
    assert isinstance(back, KafkaSource) and back == src
    assert back.watermark_delay_threshold == timedelta(minutes=5)
    assert isinstance(back.message_format, AvroFormat)
    assert back.batch is not src and back.batch == BATCH

    sfv = StreamFeatureView(
        name="v", entities=[USER], source=src, schema=[Field(name="amount", dtype=Float64)],
        ttl=timedelta(days=1), udf=double, mode="pandas", tags={"team": "risk"},
    )  # fmt: skip
    record = sfv.to_dict()
    again = FeatureView.from_dict(record, {"user": USER})
    assert isinstance(again, StreamFeatureView) and again == sfv
    assert again.mode == "pandas" and again.stream_udf is not None
    assert again.batch_source == BATCH


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"kafka_bootstrap_servers": ""}, "kafka_bootstrap_servers"),
        ({"topic": ""}, "topic"),
        ({"timestamp_field": ""}, "timestamp_field"),
        ({"batch_source": None}, "batch_source= is required"),
        ({"batch_source": PushSource(name="p", batch_source=BATCH)}, "offline source"),
        ({"message_format": "json"}, "JsonFormat"),
    ],
)
def test_kafka_source_errors(kw: dict[str, object], words: str) -> None:
    with pytest.raises(DefinitionError, match=words):
        kafka(**kw)


def test_avro_format_needs_a_record_schema() -> None:
    with pytest.raises(DefinitionError, match="Avro record schema"):
        AvroFormat(schema_json='{"type": "string"}')
    with pytest.raises(DefinitionError, match="not JSON"):
        AvroFormat(schema_json="{")


def test_stream_view_errors() -> None:
    fields = [Field(name="amount", dtype=Float64)]
    with pytest.raises(DefinitionError, match="must be a KafkaSource"):
        StreamFeatureView(name="v", entities=[USER], source=BATCH, schema=fields)
    with pytest.raises(DefinitionError, match="mode must be one of"):
        StreamFeatureView(name="v", entities=[USER], source=kafka(), schema=fields, mode="spark")
    with pytest.raises(DefinitionError, match="Aggregation objects"):
        StreamFeatureView(
            name="v", entities=[USER], source=kafka(), schema=fields, aggregations=[object()]
        )
    with pytest.raises(DefinitionError, match="udf must be a function"):
        StreamFeatureView(name="v", entities=[USER], source=kafka(), schema=fields, udf=3)  # type: ignore[arg-type]


def test_apply_lists_the_view_and_checks_the_batch_source(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", "topic-x", "127.0.0.1:1")
    store = FeatureStore(repo_path=repo)
    views = {v.name: v for v in store.list_feature_views()}
    assert isinstance(views["tx_live"], StreamFeatureView)
    assert store.get_data_source("tx_stream").topic == "topic-x"  # type: ignore[attr-defined]
    # a batch source without a declared feature column is refused at apply
    for f in (repo / "data" / "tx").iterdir():
        f.unlink()
    pq.write_table(
        pa.table({"user_id": [1], "event_timestamp": pa.array([0], pa.timestamp("us"))}),
        repo / "data" / "tx" / "x.parquet",
    )
    with pytest.raises(SourceColumnMissing, match="amount"):
        FeatureStore(repo_path=repo).apply()
