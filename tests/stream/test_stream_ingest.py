"""banquet ingest against the local broker: produce -> readable online (SQLite, Redis; JSON,
Avro; a udf), bad messages to the dead-letter topic while the rest flows, an append to the
batch source, /metrics."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from stream_support import (
    AVRO_SCHEMA,
    Ingest,
    consume_all,
    event,
    make_repo,
    online_values,
    produce,
    redis_conn,
    wait_for,
)

from banquet.errors import StreamError


def _latest(events: list[dict[str, Any]]) -> dict[int, tuple[Any, ...]]:
    out: dict[int, tuple[float, tuple[Any, ...]]] = {}
    for e in events:
        cur = out.get(e["user_id"])
        if cur is None or e["ts"] >= cur[0]:
            out[e["user_id"]] = (e["ts"], (e["amount"], e["n"], e["label"]))
    return {u: v for u, (_, v) in out.items()}


def _events(users: int, per_user: int, now: float) -> list[dict[str, Any]]:
    # per user, timestamps in shuffled order: the newest must win, not the last sent
    out = []
    for i in [2, 0, 1, *range(3, per_user)][:per_user]:
        for u in range(users):
            out.append(event(u, now - 100 + i, float(u * 10 + i), i, f"v{i}"))
    return out


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_produce_then_readable_online(
    tmp_path: Path, kafka: str, topic: Any, online: str, redis_url: str
) -> None:
    t = topic(3)
    repo = make_repo(tmp_path / "r", t, kafka, online=online, redis=redis_conn(redis_url))
    events = _events(200, 4, time.time())
    produce(kafka, t, events)
    expected = _latest(events)
    with Ingest(repo, batch_rows=300):
        wait_for(lambda: online_values(repo, list(expected)) == expected, 40, "all values")
    assert online_values(repo, [10_000]) == {10_000: (None, None, None)}


def test_avro_and_udf(tmp_path: Path, kafka: str, topic: Any) -> None:
    import fastavro

    t = topic(1)
    udf = """
    def double_amount(df):
        df["amount"] = df["amount"] * 2
        return df
    """
    repo = make_repo(tmp_path / "r", t, kafka, fmt="avro", udf=udf)
    now = time.time()
    values = []
    for u in range(5):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, fastavro.parse_schema(AVRO_SCHEMA), event(u, now, 1.5 + u))
        values.append(buf.getvalue())
    produce(kafka, t, [*values, b"\x01\x02"])  # the last: not a record of the schema
    with Ingest(repo):
        want = {u: (2 * (1.5 + u), 0, "x") for u in range(5)}
        wait_for(lambda: online_values(repo, list(range(5))) == want, 40, "avro values")
    dead = consume_all(kafka, f"{t}.banquet-dlq", 1)
    assert [m.value() for m in dead] == [b"\x01\x02"]
    assert b"Avro" in dict(dead[0].headers())["banquet-reason"]


def test_bad_messages_go_to_the_dlq_and_the_rest_flows(
    tmp_path: Path, kafka: str, topic: Any
) -> None:
    t = topic(2)
    repo = make_repo(tmp_path / "r", t, kafka)
    now = time.time()
    bad = {
        b"not json at all": "JSON object",
        json.dumps({"ts": now, "amount": 1.0, "n": 1, "label": "a"}).encode(): "is null",
        json.dumps(event(7, now, 1.0) | {"n": "seven"}).encode(): "JSON object",
        json.dumps(event(8, now, 1.0) | {"ts": now + 10 * 86400}).encode(): "future",
        json.dumps(event(9, 1e11, 1.0)).encode(): "outside the range",
        b"": "empty",
    }
    good = [event(u, now - 5, float(u)) for u in range(50)]
    produce(kafka, t, [*good[:25], *bad, *good[25:]])
    port = _free_port()
    with Ingest(repo, metrics_port=port):
        want = {u: (float(u), 0, "x") for u in range(50)}
        wait_for(lambda: online_values(repo, list(range(50))) == want, 40, "the good values")
        dead = consume_all(kafka, f"{t}.banquet-dlq", len(bad))
        wait_for(lambda: "dead_letters_total" in _metrics(port), 10, "metrics")
        text = _metrics(port)
    assert sorted(m.value() for m in dead) == sorted(bad)
    for m in dead:
        headers = dict(m.headers())
        assert bad[m.value()] in headers["banquet-reason"].decode(), headers
        assert headers["banquet-topic"] == t.encode()
        assert int(headers["banquet-offset"]) >= 0
    n_dead = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("banquet_ingest_dead_letters_total{")
    )
    assert n_dead == len(bad)
    assert 'banquet_ingest_rows_written_total{feature_view="tx_live"} 50' in text
    assert "banquet_ingest_consumer_lag{" in text
    assert 'banquet_ingest_delay_seconds_count{feature_view="tx_live"} 50' in text


def test_no_dlq_logs_and_skips(tmp_path: Path, kafka: str, topic: Any, caplog: Any) -> None:
    t = topic(1)
    repo = make_repo(tmp_path / "r", t, kafka)
    produce(kafka, t, [b"{", event(1, time.time(), 3.0)])
    with caplog.at_level("WARNING", logger="banquet.ingest"), Ingest(repo, no_dlq=True):
        wait_for(lambda: online_values(repo, [1])[1][0] == 3.0, 40, "the good value")
    assert any("skipped message" in r.getMessage() for r in caplog.records)


def test_online_and_offline_appends_to_the_batch_source(
    tmp_path: Path, kafka: str, topic: Any
) -> None:
    t = topic(1)
    repo = make_repo(tmp_path / "r", t, kafka)
    now = time.time()
    produce(kafka, t, [event(u, now, float(u)) for u in range(20)])
    with Ingest(repo, to="online_and_offline"):
        wait_for(lambda: online_values(repo, [19])[19][0] == 19.0, 40, "values")
    rows = ds.dataset(str(repo / "data" / "tx"), format="parquet").to_table()
    assert rows.num_rows == 21  # the seed row + 20
    assert sorted(rows.column("user_id").to_pylist())[1:] == list(range(20))


def test_unknown_view_is_a_typed_error(tmp_path: Path, kafka: str, topic: Any) -> None:
    repo = make_repo(tmp_path / "r", topic(1), kafka)
    with pytest.raises(StreamError, match="not registered"), Ingest(repo, views=["nope"]):
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())
