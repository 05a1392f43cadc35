"""Prometheus metrics in the text exposition format (version 0.0.4), kept in process.

* ``banquet_server_requests_total{endpoint,status}``: requests answered;
* ``banquet_server_request_duration_seconds{endpoint}``: latency histogram, from the first
  byte of the request handled to the response sent;
* ``banquet_feature_age_seconds{feature_view}``: freshness of what was actually served: per
  request and feature view, the age (now - event time) of the oldest value returned;
* ``banquet_feature_rows_served_total{feature_view}``: entity rows found and returned;
* ``banquet_registry_version``, ``banquet_registry_healthy``, ``banquet_registry_last_refresh_age_seconds``.

Updates happen on the event loop thread only (handlers that run in worker threads report
back to it), so no locks. With several workers each process keeps its own numbers; a scrape
sees the worker that answered it.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
AGE_BUCKETS = (
    1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0,
    365 * 86400.0,
)  # fmt: skip


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            total += n
            le = "+Inf" if bound == float("inf") else _num(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {total}')
        out.append(f"{name}_sum{{{labels}}} {_num(self.sum)}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class Metrics:
    def __init__(self, gauges: Callable[[], dict[str, float]] | None = None) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.age: dict[str, Histogram] = {}
        self.served: dict[str, int] = {}
        self._gauges = gauges  # read at scrape time (registry state)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        h = self.latency.get(endpoint)
        if h is None:
            h = self.latency[endpoint] = Histogram(LATENCY_BUCKETS)
        h.observe(seconds)

    def served_view(self, view: str, event_us: list[int | None]) -> None:
        """Record the event times of one view's values in one response (None: not found)."""
        found = [e for e in event_us if e is not None]
        if not found:
            return
        self.served[view] = self.served.get(view, 0) + len(found)
        h = self.age.get(view)
        if h is None:
            h = self.age[view] = Histogram(AGE_BUCKETS)
        h.observe(max(0.0, time.time() - min(found) / 1e6))

    def render(self) -> bytes:
        lines = [
            "# HELP banquet_server_requests_total Requests answered, by endpoint and status.",
            "# TYPE banquet_server_requests_total counter",
        ]
        for (endpoint, status), n in sorted(self.requests.items()):
            lines.append(
                f'banquet_server_requests_total{{endpoint="{_esc(endpoint)}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP banquet_server_request_duration_seconds Time to answer a request.",
            "# TYPE banquet_server_request_duration_seconds histogram",
        ]
        for endpoint, h in sorted(self.latency.items()):
            lines += h.lines(
                "banquet_server_request_duration_seconds", f'endpoint="{_esc(endpoint)}"'
            )
        lines += [
            "# HELP banquet_feature_age_seconds Age of the oldest value served per request and feature view.",
            "# TYPE banquet_feature_age_seconds histogram",
        ]
        for view, h in sorted(self.age.items()):
            lines += h.lines("banquet_feature_age_seconds", f'feature_view="{_esc(view)}"')
        lines += [
            "# HELP banquet_feature_rows_served_total Entity rows with a value found and served.",
            "# TYPE banquet_feature_rows_served_total counter",
        ]
        for view, n in sorted(self.served.items()):
            lines.append(f'banquet_feature_rows_served_total{{feature_view="{_esc(view)}"}} {n}')
        for name, value in (self._gauges() if self._gauges else {}).items():
            lines += [f"# TYPE {name} gauge", f"{name} {_num(value)}"]
        return ("\n".join(lines) + "\n").encode()


def _num(x: float) -> str:
    x = float(x)
    if x.is_integer():
        return str(int(x))
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return "NaN" if math.isnan(x) else repr(x)


def _esc(label: str) -> str:
    return label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
