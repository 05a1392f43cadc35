"""Helpers of the streaming-ingestion tests (test modules cannot import conftest.py): the local
Kafka-protocol broker (Tansu, started by `make services`; BANQUET_KAFKA_BOOTSTRAP), fresh topics,
and feature repos whose one StreamFeatureView reads such a topic into SQLite or Redis."""

from __future__ import annotations

import json
import os
import textwrap
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")  # pinned in requirements-dev.txt

BOOTSTRAP = os.environ.get("BANQUET_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


@pytest.fixture(scope="session")
def kafka() -> str:
    """The broker's bootstrap address, checked to answer a metadata request."""
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=5)
    except Exception as e:
        pytest.fail(
            f"no Kafka broker answers at {BOOTSTRAP}: run `make services` "
            f"(scripts/services.sh start kafka) ({e})",
            pytrace=False,
        )
    return BOOTSTRAP


def create_topic(bootstrap: str, partitions: int = 1, name: str | None = None) -> str:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic  # admin re-exports it untyped

    name = name or f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        f.result(10)
    return name


@pytest.fixture
def topic(kafka: str) -> Callable[..., str]:
    return lambda partitions=1: create_topic(kafka, partitions)


def produce(bootstrap: str, topic: str, values: Iterable[bytes | dict[str, Any]], **kw: Any) -> int:
    """Send the values (dicts as JSON), keyed by their user_id when they have one."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **kw})
    n = 0
    for v in values:
        key = None
        if isinstance(v, dict):
            key = str(v.get("user_id", "")).encode()
            v = json.dumps(v).encode()
        while True:
            try:
                p.produce(topic, value=v, key=key)
                break
            except BufferError:
                p.poll(0.05)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    left = p.flush(30)
    assert left == 0, f"{left} messages not delivered"
    return n


def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[Any]:
    """Every message of ``topic`` (reads until ``expect`` arrived or ``timeout``)."""
    from confluent_kafka import Consumer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 3000,  # Tansu assigns after about half of it
            "heartbeat.interval.ms": 500,
        }
    )
    c.subscribe([topic])
    out: list[Any] = []
    end = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < end:
        out += [m for m in c.consume(100, 0.5) if m.error() is None]
    c.close()
    return out


YAML = {
    "sqlite": """\
project: {project}
registry: data/registry.db
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
""",
    "redis": """\
project: {project}
registry: data/registry.db
online_store:
  type: redis
  connection_string: "{redis}"
offline_store:
  type: file
entity_key_serialization_version: 3
""",
}

# features.py up to the views: the entity ``user`` and the Kafka source ``source``
PRELUDE = """\
from datetime import timedelta

from banquet import Entity, Field, FileSource, KafkaSource, StreamFeatureView
from banquet.aggregation import Aggregation
from banquet.data_format import AvroFormat, JsonFormat
from banquet.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"])
source = KafkaSource(
    name="tx_stream",
    kafka_bootstrap_servers="{bootstrap}",
    topic="{topic}",
    timestamp_field="ts",
    message_format={fmt},
    batch_source=FileSource(name="tx_batch", path="data/tx", timestamp_field="event_timestamp"),
)
"""

FEATURES = """\
{udf}
tx_live = StreamFeatureView(
    name="tx_live",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[Field(name="user_id", dtype=Int64), Field(name="amount", dtype=Float64),
            Field(name="n", dtype=Int64), Field(name="label", dtype=String)],
    source=source,
    {udf_arg}
)
"""

AVRO_SCHEMA = {
    "type": "record",
    "name": "tx",
    "fields": [
        {"name": "user_id", "type": "long"},
        {"name": "ts", "type": "double"},
        {"name": "amount", "type": "double"},
        {"name": "n", "type": "long"},
        {"name": "label", "type": "string"},
    ],
}


def make_repo(
    root: Path,
    topic: str,
    bootstrap: str,
    *,
    online: str = "sqlite",
    fmt: str = "json",
    udf: str = "",
    redis: str = "",
) -> Path:
    """A feature repo with the stream view ``tx_live`` over ``topic``, applied."""
    fmt_src = (
        "JsonFormat()"
        if fmt == "json"
        else f"AvroFormat(schema_json={json.dumps(json.dumps(AVRO_SCHEMA))})"
    )
    udf_arg = "udf=double_amount, mode='pandas'," if udf else ""
    body = FEATURES.format(udf=textwrap.dedent(udf), udf_arg=udf_arg)
    return write_repo(
        root, features_py(body, bootstrap, topic, fmt_src), online=online, redis=redis
    )


def features_py(body: str, bootstrap: str, topic: str, fmt: str = "JsonFormat()") -> str:
    """A features.py: ``PRELUDE`` (``source`` reads ``topic`` as ``fmt``), then ``body``."""
    return PRELUDE.format(bootstrap=bootstrap, topic=topic, fmt=fmt) + body


def write_repo(root: Path, features: str, *, online: str = "sqlite", redis: str = "") -> Path:
    """A feature repo at ``root`` (a fresh project) whose features.py is ``features``, over
    the batch source ``data/tx`` (``user_id, event_timestamp, amount, n, label``), applied."""
    from banquet import FeatureStore

    root.mkdir(parents=True, exist_ok=True)
    (root / "data" / "tx").mkdir(parents=True)
    project = f"s{uuid.uuid4().hex[:8]}"
    (root / "feature_store.yaml").write_text(YAML[online].format(project=project, redis=redis))
    (root / "features.py").write_text(features)
    # the batch source: one (old) row, so apply can check its columns
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([0], pa.int64()),
                "event_timestamp": pa.array([0], pa.timestamp("us", tz="UTC")),
                "amount": [0.0],
                "n": pa.array([0], pa.int64()),
                "label": ["seed"],
            }
        ),
        root / "data" / "tx" / "seed.parquet",
    )
    store = FeatureStore(repo_path=root)
    store.apply()
    store.online_store.close()
    return root


def event(user: int, ts: float, amount: float, n: int = 0, label: str = "x") -> dict[str, Any]:
    return {"user_id": user, "ts": ts, "amount": amount, "n": n, "label": label}


def online_values(repo: Path, users: list[int]) -> dict[int, tuple[Any, ...]]:
    """user -> (amount, n, label) as served now (None where no value)."""
    from banquet import FeatureStore

    store = FeatureStore(repo_path=repo)
    try:
        out = store.get_online_features(
            features=["tx_live:amount", "tx_live:n", "tx_live:label"],
            entity_rows=[{"user_id": u} for u in users],
        ).to_dict()
    finally:
        store.online_store.close()
    return {u: (a, n, lab) for u, a, n, lab in zip(users, out["amount"], out["n"], out["label"])}


def wait_for(check: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Ingest:
    """``banquet ingest`` run in this process, on a thread (stopped like SIGTERM would)."""

    def __init__(self, repo: Path, **opts: Any) -> None:
        import threading

        from banquet import FeatureStore
        from banquet.stream.consumer import IngestOptions, ingest

        opts.setdefault("metrics_port", 0)
        opts.setdefault("log_interval", 0)
        self.stop = threading.Event()
        self.result: list[Any] = []
        self.store = store = FeatureStore(repo_path=repo)
        options = IngestOptions(**opts)

        def run() -> None:
            try:
                self.result.append(ingest(store, options, self.stop))
            except BaseException as e:
                self.result.append(e)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def close(self) -> Any:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "ingest did not stop within 30 s"
        self.store.online_store.close()
        out = self.result[0]
        if isinstance(out, BaseException):
            raise out
        return out

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def ingest_process(repo: Path, *args: str) -> Any:
    """``banquet ingest ARGS`` as a child process (stderr captured)."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "banquet.cli", "-c", str(repo), "ingest", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def redis_conn(url: str) -> str:
    """``redis://:password@host:port/db`` -> the store's ``host:port,db=N,password=..``."""
    from urllib.parse import unquote, urlsplit

    u = urlsplit(url)
    parts = [f"{u.hostname}:{u.port or 6379}", f"db={(u.path or '/0').lstrip('/') or 0}"]
    if u.password:
        parts.append(f"password={unquote(u.password)}")
    return ",".join(parts)
