"""Where rejected messages go: a dead-letter topic, or the log.

A dead letter is the original message (key, value, the original headers) produced to the
dead-letter topic (default ``<topic>.banquet-dlq``) with headers saying why and from where:
``banquet-reason`` (the error, one line), ``banquet-error`` (its class), ``banquet-view``,
``banquet-topic``, ``banquet-partition``, ``banquet-offset``. ``flush`` returns only when
every dead letter of the batch is acknowledged by the broker, so the consumer commits the
batch's offsets after its dead letters are durable (nothing is lost if the process dies
between the two: the batch is read again, and its dead letters are sent again).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("banquet.ingest")

DLQ_SUFFIX = ".banquet-dlq"


class DeadLetters:
    """Sends rejected messages of one view to ``topic`` (None: log and skip them)."""

    def __init__(self, producer_conf: dict[str, Any], topic: str | None, view: str) -> None:
        self.topic = topic
        self.view = view
        self._producer: Any = None
        self._failed: list[tuple[Any, str, str]] = []
        self._pending = 0
        self._lock = threading.Lock()
        if topic is not None:
            from confluent_kafka import Producer

            self._producer = Producer(
                {**producer_conf, "linger.ms": 5, "enable.idempotence": False, "acks": "all"}
            )

    def send(self, msg: Any, reason: str, kind: str) -> None:
        where = f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        if self._producer is None:
            log.warning("view %s: skipped message %s: %s", self.view, where, reason)
            return
        self._produce(msg, reason, kind)

    def _produce(self, msg: Any, reason: str, kind: str) -> None:
        headers = list(msg.headers() or [])
        headers += [
            ("banquet-reason", reason.encode()),
            ("banquet-error", kind.encode()),
            ("banquet-view", self.view.encode()),
            ("banquet-topic", (msg.topic() or "").encode()),
            ("banquet-partition", str(msg.partition()).encode()),
            ("banquet-offset", str(msg.offset()).encode()),
        ]

        def delivered(err: Any, _m: Any) -> None:
            with self._lock:
                self._pending -= 1
                if err is not None:
                    self._failed.append((msg, reason, kind))

        while True:
            try:
                self._producer.produce(
                    self.topic, value=msg.value(), key=msg.key(), headers=headers,
                    on_delivery=delivered,
                )  # fmt: skip
                break
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.1)
        with self._lock:
            self._pending += 1

    def flush(self, stop: threading.Event | None = None) -> bool:
        """Wait until every dead letter is acknowledged, resending failed ones (with backoff)
        while the broker is away. False if ``stop`` was set first (then do not commit)."""
        if self._producer is None:
            return True
        backoff = 0.2
        while True:
            self._producer.flush(1.0)
            with self._lock:
                failed, self._failed = self._failed, []
                pending = self._pending
            if not failed and pending == 0:
                return True
            if stop is not None and stop.is_set():
                return False
            if failed:
                log.warning(
                    "view %s: %d dead letter(s) not delivered to %s, retrying",
                    self.view, len(failed), self.topic,
                )  # fmt: skip
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                for m, reason, kind in failed:
                    self._produce(m, reason, kind)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5.0)
