"""Streaming ingestion: `banquet ingest` from the local Kafka-protocol broker (Tansu) into Redis
and SQLite, JSON and Avro (issue #17).

    source scripts/services.env && .venv/bin/python benches/ingest.py [EVENTS] [--quick]

Events: 1 int64 key (100k users) + 10 float64 features + the event time (seconds).
Per (format, store):
* sustained events/s of one `banquet ingest` process (default batching: 10k rows / 100 ms):
  EVENTS messages are produced first, then the process starts; timed (its /metrics, polled
  every 50 ms) from its first written batch to its last (the group join is outside the clock);
* end-to-end delay at 50% of that rate: a producer sends at half the measured rate for 10 s,
  stamping each event with its send time; every 20 ms one probe event (its own key) is
  sent, and a reader polls `get_online_features` for it: delay = when the reader first sees
  the probe's value - when it was produced; p50 / p99 over the probes;
* for reference, the same rows through banquet's `write_to_online_store` (the push path) in
  batches of 10k (rows/s), and Feast 0.67's `push` in batches of 10k from benches/.venv-peers
  (Feast has no Kafka consumer of its own; its stream path is a Spark / Flink job).
Everything shares this 2-core machine (broker, producer, consumer, store): the producer in
the delay run takes CPU from the consumer.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from banquet import FeatureStore  # noqa: E402

BOOTSTRAP = os.environ.get("BANQUET_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
USERS = 100_000
FEATURES = [f"f{i}" for i in range(10)]
AVRO = {
    "type": "record",
    "name": "ev",
    "fields": [
        {"name": "user_id", "type": "long"},
        {"name": "ts", "type": "double"},
        *({"name": f, "type": "double"} for f in FEATURES),
    ],
}


def redis_conn() -> str:
    u = urlsplit(os.environ["BANQUET_REDIS_URL"])
    parts = [f"{u.hostname}:{u.port}", f"db={(u.path or '/0').lstrip('/') or 0}"]
    if u.password:
        parts.append(f"password={unquote(u.password)}")
    return ",".join(parts)


def make_repo(online: str, fmt: str, topic: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    (root / "data").mkdir()
    store_yaml = (
        "  type: sqlite\n  path: data/online.db\n"
        if online == "sqlite"
        else f'  type: redis\n  connection_string: "{redis_conn()}"\n'
    )
    (root / "feature_store.yaml").write_text(
        f"project: b{uuid.uuid4().hex[:8]}\nregistry: data/registry.db\n"
        f"online_store:\n{store_yaml}offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    message_format = (
        "JsonFormat()"
        if fmt == "json"
        else f"AvroFormat(schema_json={json.dumps(json.dumps(AVRO))})"
    )
    (root / "features.py").write_text(
        "from banquet import Entity, Field, FileSource, KafkaSource, StreamFeatureView\n"
        "from banquet.data_format import AvroFormat, JsonFormat\n"
        "from banquet.types import Float64\n"
        "user = Entity(name='user', join_keys=['user_id'])\n"
        f"src = KafkaSource(name='ev', kafka_bootstrap_servers='{BOOTSTRAP}', topic='{topic}',\n"
        f"    timestamp_field='ts', message_format={message_format},\n"
        "    batch_source=FileSource(path='data/ev.parquet', timestamp_field='ts'))\n"
        "ev = StreamFeatureView(name='ev', entities=[user], source=src,\n"
        f"    schema=[{', '.join(f'Field(name={f!r}, dtype=Float64)' for f in FEATURES)}])\n"
    )
    seed = {"user_id": pa.array([0], pa.int64()), "ts": pa.array([0], pa.timestamp("us", "UTC"))}
    pq.write_table(pa.table({**seed, **{f: [0.0] for f in FEATURES}}), root / "data/ev.parquet")
    store = FeatureStore(repo_path=root)
    store.apply()
    store.online_store.close()
    return root


def create_topic(partitions: int = 4) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        f.result(10)
    return name


class Encoder:
    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        if fmt == "avro":
            import fastavro

            self.schema = fastavro.parse_schema(AVRO)

    def __call__(self, user: int, ts: float, vals: list[float]) -> bytes:
        if self.fmt == "json":
            feats = ",".join(f'"{f}":{v!r}' for f, v in zip(FEATURES, vals))
            return f'{{"user_id":{user},"ts":{ts!r},{feats}}}'.encode()
        import fastavro

        buf = io.BytesIO()
        rec = {"user_id": user, "ts": ts, **dict(zip(FEATURES, vals))}
        fastavro.schemaless_writer(buf, self.schema, rec)
        return buf.getvalue()


def produce(topic: str, values: list[bytes]) -> None:
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 20, "batch.num.messages": 10000})
    for v in values:
        while True:
            try:
                p.produce(topic, v)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)


def start(repo: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`banquet ingest` (default batching) as its own process, with /metrics on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "banquet.cli", "-c", str(repo), "ingest", "--no-dlq",
           "--metrics-port", str(port), "--log-interval", "0"]  # fmt: skip
    return subprocess.Popen(cmd, stderr=subprocess.DEVNULL), port


def scrape(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def throughput(online: str, fmt: str, n: int) -> float:
    topic = create_topic()
    repo = make_repo(online, fmt, topic)
    enc = Encoder(fmt)
    rng = np.random.default_rng(1)
    now = time.time()
    users = rng.integers(0, USERS, n).tolist()
    vals = rng.random((n, 10)).round(6).tolist()
    produce(topic, [enc(u, now - 60 + i * 1e-5, v) for i, (u, v) in enumerate(zip(users, vals))])
    proc, port = start(repo)
    t_first = rows_first = None
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            rows = scrape(port).get("banquet_ingest_rows_written_total", 0)
            if rows and t_first is None:
                t_first, rows_first = time.perf_counter(), rows
            if rows >= n:
                break
            time.sleep(0.05)  # each scrape costs the ingest process a little GIL time
        t_end = time.perf_counter()
    finally:
        stop(proc)
    assert t_first is not None and rows_first is not None, "nothing was ingested"
    return (n - rows_first) / (t_end - t_first)


def delay(online: str, fmt: str, rate: float, seconds: float = 10.0) -> tuple[float, float, int]:
    topic = create_topic()
    repo = make_repo(online, fmt, topic)
    enc = Encoder(fmt)
    proc, port = start(repo)
    try:
        while not scrape(port).get("banquet_ingest_assigned_partitions"):
            time.sleep(0.05)  # the group join is outside the measurement
        return _delay_run(repo, topic, enc, rate, seconds)
    finally:
        stop(proc)


def _delay_run(
    repo: Path, topic: str, enc: Encoder, rate: float, seconds: float
) -> tuple[float, float, int]:
    p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5})
    probes: list[tuple[int, float]] = []  # (key, sent)
    rng = np.random.default_rng(2)
    vals = rng.random((1000, 10)).round(6).tolist()
    t0 = time.perf_counter()
    sent = 0
    next_probe = t0
    reader_done = threading.Event()
    seen: list[float] = []

    def reader() -> None:
        reader_store = FeatureStore(repo_path=repo)
        i = 0
        while not (reader_done.is_set() and i >= len(probes)):
            if i >= len(probes):
                time.sleep(0.001)
                continue
            key, t_sent = probes[i]
            out = reader_store.get_online_features(["ev:f0"], [{"user_id": key}]).to_dict()
            if out["f0"][0] is not None:
                seen.append(time.time() - t_sent)
                i += 1
            elif time.time() - t_sent > 30:
                i += 1  # lost probe: counted as missing
        reader_store.online_store.close()

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    while (now := time.perf_counter()) - t0 < seconds:
        due = int((now - t0) * rate)
        while sent < due:
            p.produce(topic, enc(sent % USERS, time.time(), vals[sent % 1000]))
            sent += 1
        if now >= next_probe:
            key = 10_000_000 + len(probes)
            t_sent = time.time()
            p.produce(topic, enc(key, t_sent, vals[0]))
            p.poll(0)
            probes.append((key, t_sent))
            next_probe += 0.02
        p.poll(0)
        time.sleep(0.001)
    p.flush(30)
    reader_done.set()
    rt.join(60)
    d = np.array(seen)
    return float(np.percentile(d, 50)), float(np.percentile(d, 99)), len(probes) - len(d)


def push_reference(online: str, n: int) -> float:
    repo = make_repo(online, "json", "unused")
    store = FeatureStore(repo_path=repo)
    rng = np.random.default_rng(3)
    now = time.time()
    best = 0.0
    frame = pa.table(
        {
            "user_id": rng.integers(0, USERS, n),
            "ts": pa.array(((now - 60) * 1e6 + np.arange(n)).astype("int64")).cast(
                pa.timestamp("us", "UTC")
            ),
            **{f: rng.random(n) for f in FEATURES},
        }
    )
    t = time.perf_counter()
    for i in range(0, n, 10_000):
        store.write_to_online_store("ev", frame.slice(i, 10_000))
    best = n / (time.perf_counter() - t)
    store.online_store.close()
    return best


FEAST_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np, pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource
from feast.data_source import PushMode
from feast.types import Float64
repo, online, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
F = [f"f{i}" for i in range(10)]
(repo / "data").mkdir(parents=True)
pd.DataFrame({"user_id": [0], "ts": [pd.Timestamp(0, tz="UTC")], **{f: [0.0] for f in F}}).to_parquet(
    repo / "data" / "ev.parquet")
(repo / "feature_store.yaml").write_text(
    "project: feastpush\nregistry: data/registry.db\nprovider: local\n" + online
    + "offline_store:\n  type: file\nentity_key_serialization_version: 3\n")
user = Entity(name="user", join_keys=["user_id"])
batch = FileSource(name="ev_batch", path=str(repo / "data" / "ev.parquet"), timestamp_field="ts")
push = PushSource(name="ev_push", batch_source=batch)
fv = FeatureView(name="ev", entities=[user], schema=[Field(name=f, dtype=Float64) for f in F],
                 source=push, online=True)
store = FeatureStore(repo_path=str(repo))
store.apply([user, push, fv])
rng = np.random.default_rng(3)
now = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=60)
df = pd.DataFrame({"user_id": rng.integers(0, 100_000, n),
                   "ts": now + pd.to_timedelta(np.arange(n), unit="us"),
                   **{f: rng.random(n) for f in F}})
t = time.perf_counter()
for i in range(0, n, 10_000):
    store.push("ev_push", df.iloc[i:i + 10_000], to=PushMode.ONLINE)
print(json.dumps({"rows_per_s": n / (time.perf_counter() - t)}))
"""


def feast_push_reference(online: str, n: int) -> float | None:
    """Feast 0.67's ``push`` of the same rows in batches of 10k, from benches/.venv-peers
    (None when that venv is missing)."""
    py = Path(__file__).resolve().parent / ".venv-peers" / "bin" / "python"
    if not py.exists():
        return None
    if online == "redis":
        conn = redis_conn().replace("db=0", "db=14")  # Feast's keys apart from banquet's
        yaml = f'online_store:\n  type: redis\n  connection_string: "{conn}"\n'
    else:
        yaml = "online_store:\n  type: sqlite\n  path: data/online.db\n"
    repo = Path(tempfile.mkdtemp(prefix="bench-feast-push-"))
    out = subprocess.run(
        [str(py), "-c", FEAST_CHILD, str(repo / "r"), yaml, str(n)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if out.returncode != 0:
        print(f"feast push failed: {out.stderr[-500:]}", file=sys.stderr)
        return None
    return float(json.loads(out.stdout.strip().splitlines()[-1])["rows_per_s"])


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 300_000
    cases = [("json", "redis"), ("json", "sqlite"), ("avro", "redis"), ("avro", "sqlite")]
    if "--quick" in sys.argv:
        cases = cases[:1]
    print(f"{n:,} events of 1 key + 10 float64 features; broker {BOOTSTRAP}")
    print(f"{'format':6} {'store':7} {'events/s':>10} {'p50 delay':>10} {'p99 delay':>10} "
          f"{'lost':>5} {'push rows/s':>12} {'Feast push':>11}")  # fmt: skip
    feast: dict[str, float | None] = {}
    for fmt, online in cases:
        rate = throughput(online, fmt, n)
        p50, p99, lost = delay(online, fmt, rate / 2)
        pushed = push_reference(online, min(n, 200_000))
        if online not in feast:
            feast[online] = feast_push_reference(online, min(n, 100_000))
        fp = feast[online]
        fp_text = "-" if fp is None else f"{fp:,.0f}"
        print(f"{fmt:6} {online:7} {rate:>10,.0f} {p50 * 1000:>8.0f}ms {p99 * 1000:>8.0f}ms "
              f"{lost:>5} {pushed:>12,.0f} {fp_text:>11}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
