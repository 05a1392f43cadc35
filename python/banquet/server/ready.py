"""``GET /ready`` (readiness): can this process serve requests right now?

Two checks: the registry as the background refresher last saw it (no I/O on the request's
path), and one point lookup of a key that never exists on the online store, on its own worker
thread under a short timeout. Probes are shared: concurrent calls wait for the one in flight,
and a result is reused for ``CACHE_SECONDS`` (the endpoint is public, so it must not let
anyone drive load onto the store). A probe stuck on a stalled store keeps its thread busy
until the store's own timeout; meanwhile every call answers 503 at once.

Bodies never name an address, host, port, user or password: the details go to the server log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from banquet import errors as be
from banquet.server.encode import dumps
from banquet.server.errors import HTTPError
from banquet.server.pool import DeadlinePool

if TYPE_CHECKING:
    from banquet.server.refresher import RegistryRefresher
    from banquet.store import FeatureStore

log = logging.getLogger("banquet.server")

PROBE_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 0.5
_PROBE_KEY = b"\x00banquet-readiness-probe"  # not a serialized entity key: never stored


class Readiness:
    def __init__(self, store: FeatureStore, refresher: RegistryRefresher, timeout: float) -> None:
        self.store = store
        self.refresher = refresher
        self.timeout = min(PROBE_TIMEOUT_SECONDS, timeout)
        self.pool = DeadlinePool(
            1,
            self.timeout,
            name="banquet-ready",
            what="the readiness probe",
            config_key="feature_server.request_timeout_seconds",
        )
        self._result: HTTPError | None = None
        self._at = -1.0  # monotonic time of the last probe's answer
        self._probe: asyncio.Future[HTTPError | None] | None = None

    def start(self) -> None:
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop()

    async def check(self) -> bytes:
        """The 200 body, or raises the 503 ``HTTPError``."""
        r = self.refresher
        if not r.healthy or r.stale():
            raise HTTPError(
                503,
                "RegistryUnavailable",
                "the registry could not be read at the last refreshes (details in the server "
                "log); requests are served from the last good copy",
            )
        if time.monotonic() - self._at > CACHE_SECONDS:
            if self._probe is None or self._probe.done():
                self._probe = asyncio.ensure_future(self._run_probe())
            await asyncio.shield(self._probe)
        if self._result is not None:
            raise self._result
        return dumps({"status": "ready", "registry_version": r.version})

    async def _run_probe(self) -> HTTPError | None:
        try:
            await self.pool.run(self._lookup)
            problem = None
        except HTTPError as e:  # 504 past the timeout, 503 while a stuck probe holds the thread
            problem = HTTPError(
                503,
                "StoreTimeout",
                f"the online store did not answer within {self.timeout:g} s",
            )
            detail = e.message
        except be.StoreUnavailable as e:
            problem = HTTPError(503, "StoreUnavailable", "the online store cannot be reached")
            detail = f"{type(e).__name__}: {e}"
        except Exception as e:
            problem = HTTPError(503, "StoreError", "the online store failed a point lookup")
            detail = f"{type(e).__name__}: {e}"
        if problem is not None and (self._result is None or self._result.type != problem.type):
            log.warning("not ready: %s (%s)", problem.message, detail)
        elif problem is None and self._result is not None:
            log.info("ready again: the online store answers")
        self._result, self._at = problem, time.monotonic()
        return problem

    def _lookup(self) -> None:
        """One point lookup of a key that is never stored, on the first online view."""
        cat = self.store.catalog()  # the server's catalog never expires: no registry I/O
        view = next((v for v in cat.feature_views.values() if v.online), None)
        if view is not None:
            name = getattr(view, "storage_name", view.name)
            self.store.online_store.read(self.store.project, [(name, [_PROBE_KEY])])
