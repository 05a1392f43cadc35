"""Decoding and checking a micro-batch without a broker: time fields as numbers or ISO text
(either may come first), field_mapping, bad messages isolated with their reasons."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pytest
from stream_support import event, make_repo

from banquet import FeatureStore
from banquet.stream.batch import BatchProcessor
from banquet.stream.decode import Decoder


@pytest.fixture
def processor(tmp_path: Path) -> BatchProcessor:
    repo = make_repo(tmp_path / "r", "unused", "127.0.0.1:1")
    store = FeatureStore(repo_path=repo)
    view = store.catalog().feature_views["tx_live"]
    return BatchProcessor(store, view, 86_400_000_000)  # type: ignore[arg-type]


def _encode(rows: list[dict[str, object]]) -> list[bytes]:
    return [json.dumps(r).encode() for r in rows]


def test_time_as_seconds_or_iso_text(processor: BatchProcessor) -> None:
    dec: Decoder = processor.decoder
    numeric = dec.decode(_encode([event(1, 1_700_000_000.25, 1.0)]))
    assert numeric.column("ts").to_pylist()[0].isoformat() == "2023-11-14T22:13:20.250000+00:00"
    iso = _encode(
        [
            event(1, 0, 1.0) | {"ts": "2024-01-31T12:00:00Z"},
            event(2, 0, 1.0) | {"ts": "2024-01-31T17:30:00+05:30"},
            event(3, 0, 1.0) | {"ts": "2024-01-31T12:00:00"},
        ]
    )
    for _ in range(2):  # after the text batch the reader tries text first: both orders work
        times = dec.decode(iso).column("ts").to_pylist()
        assert {t.isoformat() for t in times} == {"2024-01-31T12:00:00+00:00"}
        assert (
            dec.decode(_encode([event(1, 0.5, 1.0)])).column("ts")[0].as_py().microsecond == 500_000
        )


def test_pretty_printed_messages_and_one_object_each(processor: BatchProcessor) -> None:
    pretty = json.dumps(event(4, time.time(), 2.5), indent=2).encode()
    assert b"\n" in pretty
    table = processor.decoder.decode([pretty, json.dumps(event(5, time.time(), 1.0)).encode()])
    assert table.column("user_id").to_pylist() == [4, 5]
    with pytest.raises(Exception, match="exactly one JSON object"):
        processor.decoder.decode([b'{"user_id": 1} {"user_id": 2}'])


def test_bad_messages_isolated_with_reasons(processor: BatchProcessor) -> None:
    now = time.time()
    values = _encode([event(u, now, float(u)) for u in range(100)])
    values[10] = b"{broken"
    values[50] = json.dumps(event(50, now, 1.0) | {"amount": "lots"}).encode()
    values[99] = json.dumps(event(99, now + 3 * 86400, 1.0)).encode()
    rows, rejected = processor.run(values)
    assert [r.index for r in rejected] == [10, 50, 99]
    assert rows.rows == 97
    assert "JSON object" in rejected[0].reason and "future" in rejected[2].reason
    assert rows.keys[0].to_pylist() == [u for u in range(100) if u not in (10, 50, 99)]
    assert rows.features[0].type == pa.float64()
