"""Worker threads for the event loop: blocking calls (store reads, on-demand functions, body
parsing) run here, each under a deadline, so a slow or stalled store never blocks the loop.

Not a ``ThreadPoolExecutor``: each call is handed to the most recently idle worker (its CPU
caches and its SQLite connection are warm; a FIFO queue would rotate through every thread),
costs one lock release and one ``call_soon_threadsafe`` (no ``concurrent.futures.Future``
with its condition variable), and the pool knows what its workers are doing, which it needs
to fail fast:

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
import threading
import time
from collections import deque
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


class _Worker:
    __slots__ = ("wake", "call")

    def __init__(self) -> None:
        self.wake = threading.Lock()  # held while idle; released to hand over ``call``
        self.wake.acquire()
        self.call: _Call | None = None


_STOP = _Call.__new__(_Call)  # handed to a worker to make it exit


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
        self._lock = threading.Lock()  # guards _idle and _backlog
        self._idle: list[_Worker] = []  # a stack: the last worker to finish is woken first
        self._backlog: deque[_Call] = deque()  # calls waiting for a worker
        self._started: dict[int, float] = {}  # worker ident -> monotonic start of its call
        self._name = name
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        while len(self._workers) < self.threads:
            w = _Worker()
            with self._lock:
                self._idle.append(w)
            t = threading.Thread(
                target=self._work, args=(w,), name=f"{self._name}-{len(self._workers)}", daemon=True
            )
            t.start()
            self._workers.append(t)

    def stop(self) -> None:
        """Ask the workers to exit after their current call; waits briefly (a worker stuck
        on a stalled store is a daemon thread and does not hold the process)."""
        for _ in self._workers:
            self._hand(_STOP)
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
        timer = loop.call_later(self.timeout, self._expire, call)
        self._hand(call)  # last: the worker wakes wanting the GIL this thread still holds
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

    def _hand(self, call: _Call) -> None:
        """Give ``call`` to the most recently idle worker, or queue it."""
        with self._lock:
            if not self._idle:
                self._backlog.append(call)
                return
            w = self._idle.pop()
        w.call = call
        w.wake.release()

    # --- worker threads ----------------------------------------------------------------------

    def _work(self, w: _Worker) -> None:
        ident = threading.get_ident()
        started = self._started
        while True:
            w.wake.acquire()  # until a call is handed over
            call, w.call = w.call, None
            while call is not None:
                if call is _STOP:
                    return
                if call.dropped:
                    call.loop.call_soon_threadsafe(self._skipped, call)
                else:
                    started[ident] = time.monotonic()
                    try:
                        value, ok = call.fn(*call.args), True
                    except BaseException as e:  # handed to the request, which classifies it
                        value, ok = e, False
                    finally:
                        del started[ident]
                    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                        call.loop.call_soon_threadsafe(self._settle, call, ok, value)
                with self._lock:
                    if self._backlog:
                        call = self._backlog.popleft()
                    else:
                        self._idle.append(w)
                        call = None
