"""``banquet ingest``: Kafka -> micro-batches -> one online write each -> commit.

One consumer per stream feature view, in a thread of its own, in consumer group
``banquet.<project>.<view>`` (several ``banquet ingest`` processes share a view's partitions
by the group's rebalancing). Each round:

1. ``consume`` up to ``batch_rows`` messages, waiting at most ``linger_ms`` for them;
2. ``batch.py`` decodes, transforms and checks them; bad messages go to the dead-letter
   topic (``dlq.py``) or the log;
3. one online write of the latest row per key (the store keeps the newer event per key, so a
   replayed or late message never replaces a newer value); with ``to=online_and_offline``
   first one append to the view's batch source;
4. the dead letters are flushed, then the offsets (last message + 1 per partition) are
   committed synchronously.

Offsets are committed only after steps 3-4 returned: at-least-once delivery. A crash between
a write and its commit re-reads that batch; newer-event-wins makes the online values the same
as if it had been read once (an offline append, though, is then repeated). A store that
fails is retried with backoff (the batch is not committed meanwhile); a broker that goes
away is reconnected to by librdkafka with backoff, and uncommitted offsets are committed once
it is back. SIGTERM / Ctrl-C: the batch in hand is finished and committed, then the process
exits 0.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from banquet.errors import StreamError
from banquet.stream.batch import BatchProcessor, Checked, delays_seconds
from banquet.stream.dlq import DLQ_SUFFIX, DeadLetters
from banquet.stream.metrics import IngestMetrics, ProgressLog, serve_metrics
from banquet.stream.view import StreamFeatureView

if TYPE_CHECKING:
    from banquet.store import FeatureStore

log = logging.getLogger("banquet.ingest")

TO_MODES = ("online", "online_and_offline")


@dataclass
class IngestOptions:
    views: list[str] = field(default_factory=list)  # empty: every online stream view
    batch_rows: int = 10_000
    linger_ms: int = 100
    to: str = "online"
    dlq_topic: str | None = None  # None: "<topic>.banquet-dlq"
    no_dlq: bool = False  # log and skip bad messages instead
    bootstrap_servers: str | None = None  # overrides each source's kafka_bootstrap_servers
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 8890  # 0: no /metrics endpoint
    log_interval: float = 10.0  # seconds between progress lines; 0: none
    stats_interval_ms: int = 2000  # librdkafka statistics (consumer lag)
    consumer_config: dict[str, Any] = field(default_factory=dict)  # extra librdkafka settings


class ViewIngestor:
    """The consume / write / commit loop of one view."""

    def __init__(
        self,
        store: FeatureStore,
        view: StreamFeatureView,
        opts: IngestOptions,
        metrics: IngestMetrics,
        stop: threading.Event,
    ) -> None:
        from confluent_kafka import Consumer

        self.store, self.view, self.opts, self.metrics, self.stop = store, view, opts, metrics, stop
        src = view.stream_source
        self.topic = src.topic
        self.servers = opts.bootstrap_servers or src.kafka_bootstrap_servers
        self.group = f"banquet.{store.project}.{view.name}"
        from banquet.write_checks import max_future_skew_us

        if view.stream_udf is not None:
            view.stream_udf.trust = store.trust_policy
        self.processor = BatchProcessor(store, view, max_future_skew_us(store.config))
        common = {"bootstrap.servers": self.servers, "error_cb": self._on_error}
        conf = {
            **common,
            "group.id": self.group,
            "client.id": f"banquet-ingest-{view.name}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            # Tansu (the test broker) waits about half the session timeout before it hands
            # out partitions; 6 s still survives a 5 s stall of the heartbeat thread
            "session.timeout.ms": 6_000,
            "heartbeat.interval.ms": 1_000,
            "topic.metadata.refresh.interval.ms": 5_000,
            "reconnect.backoff.ms": 100,
            "reconnect.backoff.max.ms": 5_000,
            "max.partition.fetch.bytes": 16 << 20,  # fewer, larger fetches (1 MiB: -30%)
            "fetch.wait.max.ms": 100,  # a quiet partition's fetch returns within the linger
            "statistics.interval.ms": opts.stats_interval_ms,
            "stats_cb": lambda s: metrics.stats(view.name, s),
            **opts.consumer_config,
        }
        try:
            self.consumer = Consumer(conf)
        except Exception as e:  # KafkaException: a bad setting
            raise StreamError(
                f"view {view.name!r}: the Kafka consumer refused its settings: {e}"
            ) from None
        dlq = None if opts.no_dlq else (opts.dlq_topic or f"{self.topic}{DLQ_SUFFIX}")
        if dlq is not None:
            _ensure_topic(self.servers, dlq)
        self.dead = DeadLetters(common, dlq, view.name)
        self.pending: dict[tuple[str, int], int] = {}  # written, not yet committed
        self._lock = threading.Lock()  # pending (the writer adds, the consumer commits)
        self.assigned: set[tuple[str, int]] = set()  # the partitions this consumer holds
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=1)  # batches for the writer
        self.failure: BaseException | None = None
        self.unfinished = 0  # messages consumed but not written when stopped

    # --- the loop ---------------------------------------------------------------------------
    # Two threads per view: this one consumes, decodes and checks batch k+1 while the writer
    # thread writes batch k (at most one batch waits between them); offsets the writer has
    # made durable are committed here, after each consume.

    def run(self) -> None:
        writer = threading.Thread(
            target=self._writer, name=f"banquet-ingest-write-{self.view.name}", daemon=True
        )
        writer.start()
        try:
            self.consumer.subscribe(
                [self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            timeout = self.opts.linger_ms / 1000.0
            while not self.stop.is_set():
                msgs = self.consumer.consume(num_messages=self.opts.batch_rows, timeout=timeout)
                if msgs:
                    self._handle(msgs)
                if self.pending:
                    self._commit()
        except BaseException as e:  # reported by ingest(), which stops the other views
            self.failure = self.failure or e
            self.stop.set()
        finally:
            self._jobs.put(None)
            writer.join()
            try:
                if self.pending:
                    self._commit()
                self.dead.close()
                self.consumer.close()  # leaves the group: the partitions move at once
            except Exception as e:
                log.warning("view %s: closing the consumer: %s", self.view.name, e)

    def _handle(self, msgs: list[Any]) -> None:
        good = msgs
        if any(m.error() is not None for m in msgs):
            good = []
            for m in msgs:
                err = m.error()
                if err is None:
                    good.append(m)
                else:
                    log.warning("view %s: consumer error: %s", self.view.name, err)
                    self.metrics.error(self.view.name, err.name())
            if not good:
                return
        rows, rejected = self.processor.run([m.value() or b"" for m in good])
        # a partition's messages come in offset order: its last one has the highest offset
        offsets: dict[tuple[str, int], int] = {}
        for m in reversed(good):
            key = (m.topic(), m.partition())
            if key not in offsets:
                offsets[key] = m.offset() + 1
                if len(offsets) == len(self.assigned):
                    break  # every partition seen
        dead = [(good[r.index], r) for r in rejected]
        self._jobs.put((rows, dead, len(good), offsets))

    def _writer(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                rows, dead, n, offsets = job
                if self.unfinished or self.failure is not None:
                    self.unfinished += n  # an earlier batch was not written: nor is this one
                    continue
                self._write_job(rows, dead, n, offsets)
            except BaseException as e:
                self.failure = e
                self.stop.set()
                if job is not None:
                    self.unfinished += job[2]
            finally:
                self._jobs.task_done()

    def _write_job(
        self, rows: Checked, dead: list[tuple[Any, Any]], n: int, offsets: dict[Any, int]
    ) -> None:
        for msg, r in dead:
            self.dead.send(msg, r.reason, r.kind)
            self.metrics.dead_letter(self.view.name, r.kind)
        t0 = time.perf_counter()
        if not self._write(rows) or not self.dead.flush(self.stop):
            self.unfinished += n  # stopped while the store was down: nothing committed
            return
        write_s = time.perf_counter() - t0
        self.metrics.batch(self.view.name, n, rows.rows, write_s, delays_seconds(rows))
        with self._lock:
            for key, nxt in offsets.items():
                if nxt > self.pending.get(key, -1):
                    self.pending[key] = nxt

    def _write(self, rows: Checked) -> bool:
        """Write until it succeeds (backoff), or until asked to stop (False)."""
        if not rows.rows:
            return True
        backoff = 0.2
        while True:
            try:
                # offline first, as push does: a retry after an online failure does not
                # append again
                if self.opts.to == "online_and_offline" and not rows.offline_done:
                    self.store.offline_store.append(
                        self.view.batch_source, self.processor.offline_rows(rows)
                    )
                    rows.offline_done = True
                if self.view.online:
                    self.processor.write_online(rows)
                return True
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as e:
                self.metrics.error(self.view.name, type(e).__name__)
                log.warning(
                    "view %s: write of %d rows failed (%s: %s); retrying in %.1fs",
                    self.view.name, rows.rows, type(e).__name__, e, backoff,
                )  # fmt: skip
                if self.stop.wait(backoff):
                    return False
                backoff = min(backoff * 2, 5.0)

    def _commit(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        with self._lock:
            taken, self.pending = self.pending, {}
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(taken.items())]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            self.metrics.error(self.view.name, "commit")
            mine = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            with self._lock:  # retry the ones still ours (a newer offset may have come)
                for key, nxt in taken.items():
                    if key in mine and nxt > self.pending.get(key, -1):
                        self.pending[key] = nxt
            log.warning("view %s: commit failed (%s); will retry", self.view.name, e)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        parts = [(p.topic, p.partition) for p in partitions]
        self.assigned.update(parts)
        self.metrics.assignment(self.view.name, parts, held=True)
        log.info("view %s: assigned %s", self.view.name, [p for _, p in parts])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self._jobs.join()  # the batches in hand are written first, then committed
        if self.pending:
            self._commit()
        parts = [(p.topic, p.partition) for p in partitions]
        self.assigned.difference_update(parts)
        self.metrics.assignment(self.view.name, parts, held=False)

    def _on_error(self, err: Any) -> None:
        self.metrics.error(self.view.name, err.name())
        log.warning("view %s: Kafka: %s", self.view.name, err)


def _ensure_topic(servers: str, topic: str) -> None:
    """Create the dead-letter topic if it is missing (one partition); errors only logged."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    try:
        admin = AdminClient({"bootstrap.servers": servers})
        if topic in admin.list_topics(timeout=5).topics:
            return
        for f in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
            f.result(10)
    except Exception as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            log.warning("could not create the dead-letter topic %s: %s", topic, e)


def stream_views(store: FeatureStore, names: list[str]) -> list[StreamFeatureView]:
    views = store.catalog().feature_views
    streams = {n: v for n, v in views.items() if isinstance(v, StreamFeatureView)}
    if not names:
        chosen = [v for v in streams.values() if v.online]
        if not chosen:
            raise StreamError(
                f"project {store.project!r} has no online StreamFeatureView to ingest; define "
                "one over a KafkaSource and run `banquet apply`"
            )
        return chosen
    out = []
    for n in names:
        if n not in streams:
            what = "is not a StreamFeatureView" if n in views else "is not registered"
            raise StreamError(f"feature view {n!r} {what}; stream feature views: {sorted(streams)}")
        out.append(streams[n])
    return out


def ingest(store: FeatureStore, opts: IngestOptions, stop: threading.Event | None = None) -> int:
    """Run until ``stop`` is set (the CLI sets it on SIGTERM / SIGINT); returns the number of
    messages consumed but not written (0 after a clean stop)."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise StreamError(
            "banquet ingest needs the Kafka client: pip install confluent-kafka"
        ) from None
    if opts.to not in TO_MODES:
        raise StreamError(f"to must be one of {TO_MODES}, got {opts.to!r}")
    if opts.batch_rows < 1 or opts.linger_ms < 0:
        raise StreamError("batch_rows must be >= 1 and linger_ms >= 0")
    stop = stop or threading.Event()
    views = stream_views(store, opts.views)
    metrics = IngestMetrics()
    workers = [ViewIngestor(store, v, opts, metrics, stop) for v in views]
    server = None
    if opts.metrics_port:
        try:
            server = serve_metrics(metrics, opts.metrics_host, opts.metrics_port)
        except OSError as e:
            raise StreamError(
                f"cannot serve /metrics on {opts.metrics_host}:{opts.metrics_port} ({e}); pick "
                "another --metrics-port (0: no endpoint)"
            ) from None
    progress = ProgressLog(metrics, [v.name for v in views], opts.log_interval)
    threads = [
        threading.Thread(target=w.run, name=f"banquet-ingest-{w.view.name}", daemon=True)
        for w in workers
    ]
    threading.Thread(target=progress.run, args=(stop,), daemon=True).start()
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
        if server is not None:
            server.shutdown()
            server.server_close()
    for w in workers:
        if w.failure is not None:
            if isinstance(w.failure, Exception):
                raise StreamError(
                    f"view {w.view.name!r}: ingest stopped: {type(w.failure).__name__}: {w.failure}"
                ) from w.failure
            raise w.failure
    for v in views:
        log.info("%s", progress.line(v.name))
    return sum(w.unfinished for w in workers)
