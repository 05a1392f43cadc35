"""The ingest process's numbers: Prometheus ``/metrics`` (text format 0.0.4, the style of
``banquet serve``'s) and the one-line progress log.

* ``banquet_ingest_messages_total{feature_view}``: messages consumed (good and bad);
* ``banquet_ingest_rows_written_total{feature_view}``: rows written to the online store;
* ``banquet_ingest_dead_letters_total{feature_view,error}``: rejected messages, by error class;
* ``banquet_ingest_batches_total{feature_view}``: micro-batches written and committed;
* ``banquet_ingest_write_seconds{feature_view}``: online write time per micro-batch;
* ``banquet_ingest_delay_seconds{feature_view}``: end-to-end delay, now - event time of each
  row when its write returned (includes the producer's own lag);
* ``banquet_ingest_consumer_lag{feature_view,topic,partition}``: messages behind the end of
  each assigned partition (librdkafka's statistics, refreshed every ``stats_interval``);
* ``banquet_ingest_assigned_partitions{feature_view,topic,partition}``: 1 for each partition
  this process holds (the consumer group's assignment);
* ``banquet_ingest_errors_total{feature_view,kind}``: broker / store errors survived.

Several threads (one per view) update these: one lock, held for a few additions.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from banquet.server.metrics import Histogram, _esc

log = logging.getLogger("banquet.ingest")

DELAY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)  # fmt: skip
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class IngestMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: dict[str, int] = {}
        self.rows: dict[str, int] = {}
        self.batches: dict[str, int] = {}
        self.dead: dict[tuple[str, str], int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.lag: dict[tuple[str, str, int], int] = {}
        self.assigned: dict[tuple[str, str, int], int] = {}
        self.write = {}  # type: dict[str, Histogram]
        self.delay = {}  # type: dict[str, Histogram]

    # --- updates ----------------------------------------------------------------------------

    def batch(self, view: str, messages: int, rows: int, write_s: float, delays: Any) -> None:
        counts = None
        if len(delays):
            edges = np.asarray(DELAY_BUCKETS)
            counts = np.bincount(np.searchsorted(edges, delays), minlength=len(edges) + 1)
        with self._lock:
            self.messages[view] = self.messages.get(view, 0) + messages
            self.rows[view] = self.rows.get(view, 0) + rows
            self.batches[view] = self.batches.get(view, 0) + 1
            self.write.setdefault(view, Histogram(WRITE_BUCKETS)).observe(write_s)
            if counts is not None:
                h = self.delay.setdefault(view, Histogram(DELAY_BUCKETS))
                for i, n in enumerate(counts.tolist()):
                    h.counts[i] += n
                h.sum += float(np.sum(delays))
                h.count += len(delays)

    def dead_letter(self, view: str, kind: str) -> None:
        with self._lock:
            self.dead[(view, kind)] = self.dead.get((view, kind), 0) + 1

    def error(self, view: str, kind: str) -> None:
        with self._lock:
            self.errors[(view, kind)] = self.errors.get((view, kind), 0) + 1

    def assignment(self, view: str, parts: list[tuple[str, int]], held: bool) -> None:
        with self._lock:
            for topic, part in parts:
                if held:
                    self.assigned[(view, topic, part)] = 1
                else:
                    self.assigned.pop((view, topic, part), None)
                    self.lag.pop((view, topic, part), None)

    def stats(self, view: str, stats_json: str) -> None:
        """librdkafka's statistics (the ``stats_cb`` JSON): each partition's consumer lag."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        lags: dict[tuple[str, str, int], int] = {}
        for topic, t in (stats.get("topics") or {}).items():
            for pid, p in (t.get("partitions") or {}).items():
                part = int(pid)
                lag = p.get("consumer_lag", -1)
                if part >= 0 and lag is not None and lag >= 0:
                    lags[(view, topic, part)] = int(lag)
        with self._lock:
            for key in [k for k in self.lag if k[0] == view]:
                del self.lag[key]
            self.lag.update(lags)

    # --- reading ----------------------------------------------------------------------------

    def totals(self, view: str) -> tuple[int, int, int, int]:
        """(messages, rows, dead letters, total lag) of one view."""
        with self._lock:
            dead = sum(n for (v, _), n in self.dead.items() if v == view)
            lag = sum(n for (v, _, _), n in self.lag.items() if v == view)
            return self.messages.get(view, 0), self.rows.get(view, 0), dead, lag

    def render(self) -> bytes:
        out: list[str] = []

        def counter(name: str, help_: str, values: dict[Any, int], labels: tuple[str, ...]) -> None:
            out.append(f"# HELP {name} {help_}")
            kind = "counter" if name.endswith("_total") else "gauge"
            out.append(f"# TYPE {name} {kind}")
            for key, n in sorted(values.items()):
                key = key if isinstance(key, tuple) else (key,)
                lab = ",".join(f'{k}="{_esc(str(v))}"' for k, v in zip(labels, key))
                out.append(f"{name}{{{lab}}} {n}")

        with self._lock:
            counter("banquet_ingest_messages_total", "Messages consumed.", self.messages,
                    ("feature_view",))  # fmt: skip
            counter("banquet_ingest_rows_written_total", "Rows written online.", self.rows,
                    ("feature_view",))  # fmt: skip
            counter("banquet_ingest_batches_total", "Micro-batches committed.", self.batches,
                    ("feature_view",))  # fmt: skip
            counter("banquet_ingest_dead_letters_total", "Rejected messages.", self.dead,
                    ("feature_view", "error"))  # fmt: skip
            counter("banquet_ingest_errors_total", "Broker or store errors survived.",
                    self.errors, ("feature_view", "kind"))  # fmt: skip
            counter("banquet_ingest_assigned_partitions", "Partitions this process holds.",
                    self.assigned, ("feature_view", "topic", "partition"))  # fmt: skip
            counter("banquet_ingest_consumer_lag", "Messages behind the partition's end.",
                    self.lag, ("feature_view", "topic", "partition"))  # fmt: skip
            for name, help_, hists in (
                ("banquet_ingest_write_seconds", "Online write time per batch.", self.write),
                ("banquet_ingest_delay_seconds", "Now - event time at write.", self.delay),
            ):
                out.append(f"# HELP {name} {help_}")
                out.append(f"# TYPE {name} histogram")
                for view, h in sorted(hists.items()):
                    out.extend(h.lines(name, f'feature_view="{_esc(view)}"'))
        return ("\n".join(out) + "\n").encode()


def serve_metrics(metrics: IngestMetrics, host: str, port: int) -> ThreadingHTTPServer:
    """``GET /metrics`` (and ``/health``) on a daemon thread; the caller shuts it down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] == "/metrics":
                body, ctype = metrics.render(), "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/health":
                body, ctype = b"ok\n", "text/plain"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # no access log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, name="banquet-ingest-metrics", daemon=True
    ).start()
    return server


class ProgressLog:
    """Every ``interval`` seconds, one line per view: rows, rows/s since the last line, dead
    letters, total lag."""

    def __init__(self, metrics: IngestMetrics, views: list[str], interval: float) -> None:
        self.metrics, self.views, self.interval = metrics, views, interval
        self._last = {v: (time.monotonic(), 0) for v in views}

    def line(self, view: str) -> str:
        msgs, rows, dead, lag = self.metrics.totals(view)
        t0, rows0 = self._last[view]
        now = time.monotonic()
        self._last[view] = (now, rows)
        rate = (rows - rows0) / max(now - t0, 1e-9)
        return (
            f"ingest {view}: {rows:,} rows written ({rate:,.0f}/s), {msgs:,} messages, "
            f"{dead:,} dead letters, lag {lag:,}"
        )

    def run(self, stop: threading.Event) -> None:
        if self.interval <= 0:
            return
        while not stop.wait(self.interval):
            for v in self.views:
                sys.stderr.write(self.line(v) + "\n")
            sys.stderr.flush()
