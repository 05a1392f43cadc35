"""The server's worker pool: answers within the deadline, drops calls that waited past it in
the queue (they never run), refuses at once while every worker is stuck, and recovers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from banquet.server.errors import HTTPError
from banquet.server.pool import DeadlinePool

DEADLINE = 0.2


def _pool(threads: int = 1) -> DeadlinePool:
    pool = DeadlinePool(threads, DEADLINE, name="test-pool", what="the test", config_key="key.x")
    pool.start()
    return pool


def test_results_and_exceptions_come_back() -> None:
    pool = _pool(2)

    async def main() -> None:
        assert await pool.run(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(ZeroDivisionError):
            await pool.run(lambda: 1 / 0)
        assert pool.pending == 0

    try:
        asyncio.run(main())
    finally:
        pool.stop()


def test_a_stuck_worker_gives_504_queued_calls_never_run_then_503_at_once() -> None:
    pool = _pool(1)
    release = threading.Event()
    ran: list[str] = []

    def stuck() -> None:
        ran.append("stuck")
        release.wait(10)

    async def main() -> None:
        t = time.perf_counter()
        first = asyncio.ensure_future(pool.run(stuck))
        queued = asyncio.ensure_future(pool.run(ran.append, "queued"))
        for call in (first, queued):
            with pytest.raises(HTTPError) as e:
                await call
            assert (e.value.status, e.value.type) == (504, "RequestTimeout")
            assert "key.x" in e.value.message
        assert DEADLINE * 0.9 < time.perf_counter() - t < DEADLINE + 0.3

        # the only worker has been stuck past the deadline: refused at once
        t = time.perf_counter()
        with pytest.raises(HTTPError) as e:
            await pool.run(ran.append, "refused")
        assert (e.value.status, e.value.type) == (503, "ServerBusy")
        assert time.perf_counter() - t < 0.05

        release.set()  # the store answers at last: the worker is free again
        for _ in range(100):
            if pool.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert await pool.run(lambda: "fine") == "fine"
        assert ran == ["stuck"]  # the queued call was dropped, the refused one never queued

    try:
        asyncio.run(main())
    finally:
        release.set()
        pool.stop()


def test_a_full_queue_is_refused_at_once() -> None:
    pool = _pool(1)
    release = threading.Event()

    async def main() -> None:
        calls = [asyncio.ensure_future(pool.run(release.wait, 10)) for _ in range(pool.max_pending)]
        await asyncio.sleep(0)  # all submitted
        with pytest.raises(HTTPError) as e:
            await pool.run(lambda: None)
        assert e.value.status == 503
        release.set()
        await asyncio.gather(*calls, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        release.set()
        pool.stop()
