"""Worker threads for the event loop: blocking calls (store reads, on-demand functions, body
parsing) run here, each under a deadline, so a slow or stalled store never blocks the loop.

Not a ``ThreadPoolExecutor``: each call is one queue put and one ``call_soon_threadsafe``
(no ``concurrent.futures.Future`` with its condition variable per call), and the pool knows
what its workers are doing, which it needs to fail fast:

* a call still queued when its deadline passes is dropped, never run;
* a call running past its deadline is answered 504 at once; its worker finishes (or the
  store's own socket timeout ends it) in the background and then takes the next call;
* when every worker has been stuck past the deadline, or the queue is full, a new call is
  refused with 503 at once instead of queueing behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from banquet.server.errors import HTTPError

log = logging.getLogger("banquet.server")


class _Call:
    __slots__ = ("fn", "args", "future", "loop", "dropped")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]
    ) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.loop = future.get_loop()
        self.dropped = False  # set on the loop when the deadline passed while queued


class DeadlinePool:
    """``await pool.run(fn, *args)``: ``fn(*args)`` on a worker thread, its result or
    exception, or ``HTTPError`` 504 past ``timeout`` seconds (503 when the pool is stuck or
    full). ``what`` names the work in messages; ``config_key`` is the setting to raise."""

    def __init__(
        self, threads: int, timeout: float, *, name: str, what: str, config_key: str
    ) -> None:
        self.threads = threads
        self.timeout = timeout
        self.max_pending = threads * 4  # running + queued; beyond: 503 at once
        self.what = what
        self.config_key = config_key
        self.pending = 0  # calls submitted and not yet answered by a worker (loop thread only)
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._started: dict[int, float] = {}  # worker ident -> monotonic start of its call
        self._name = name
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        while len(self._workers) < self.threads:
            t = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._workers)}", daemon=True
            )
            t.start()
            self._workers.append(t)

    def stop(self) -> None:
        """Ask the workers to exit after their current call; waits briefly (a worker stuck
        on a stalled store is a daemon thread and does not hold the process)."""
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + 2.0
        for t in self._workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._workers = []

    def stuck(self) -> int:
        """Workers whose current call has run longer than the deadline."""
        limit = time.monotonic() - self.timeout
        return sum(1 for t in list(self._started.values()) if t < limit)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.pending >= self.threads and (
            self.pending >= self.max_pending or self.stuck() >= self.threads
        ):
            raise HTTPError(
                503,
                "ServerBusy",
                f"all {self.threads} workers are busy with {self.what} (a slow or stalled "
                f"store?); retry later, or raise {self.config_key}",
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        call = _Call(fn, args, future)
        self.pending += 1
        self._queue.put(call)
        timer = loop.call_later(self.timeout, self._expire, call)
        try:
            return await future
        finally:
            timer.cancel()
            call.dropped = True  # answered, timed out or cancelled: a worker must not start it

    # --- loop thread -------------------------------------------------------------------------

    def _expire(self, call: _Call) -> None:
        if call.future.done():
            return
        call.dropped = True  # a worker that has not started it skips it
        call.future.set_exception(
            HTTPError(
                504,
                "RequestTimeout",
                f"no answer within {self.timeout:g} s ({self.config_key}): {self.what} was "
                "too slow or a store stalled; retry later",
            )
        )

    def _settle(self, call: _Call, ok: bool, value: Any) -> None:
        self.pending -= 1
        future = call.future
        if future.done():  # answered 504 already, or the request went away
            log.debug("a call finished after its deadline (ok=%s)", ok)
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _skipped(self, call: _Call) -> None:
        self.pending -= 1

    # --- worker threads ----------------------------------------------------------------------

    def _work(self) -> None:
        ident = threading.get_ident()
        started = self._started
        get = self._queue.get
        while True:
            call = get()
            if call is None:
                return
            if call.dropped:
                call.loop.call_soon_threadsafe(self._skipped, call)
                continue
            started[ident] = time.monotonic()
            try:
                value, ok = call.fn(*call.args), True
            except BaseException as e:  # handed to the request, which classifies it
                value, ok = e, False
            finally:
                del started[ident]
            with contextlib.suppress(RuntimeError):  # a closed loop (shutdown): nobody waits
                call.loop.call_soon_threadsafe(self._settle, call, ok, value)
