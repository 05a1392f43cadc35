"""A small progress line for long work (materialization): rows done, rows/s, on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """``with Progress("user_transactions", total) as p: p.advance(n)``; silent when disabled
    or when stderr is not a terminal (then one summary line is printed at the end)."""

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._tty = sys.stderr.isatty()

    def __enter__(self) -> Progress:
        return self

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and self._tty and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            sys.stderr.write(f"\r{self._line(now)}")
            sys.stderr.flush()

    def _line(self, now: float) -> str:
        rate = self.done / max(now - self.start, 1e-9)
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        return f"{self.label}: [{bar}] {self.done:,}/{self.total:,} rows, {rate:,.0f} rows/s"

    @property
    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            sys.stderr.write(("\r" if self._tty else "") + self._line(time.perf_counter()) + "\n")
            sys.stderr.flush()
