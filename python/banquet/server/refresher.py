"""The registry, re-read in the background every ``registry_ttl_sec``.

Requests never read the registry themselves (the server's FeatureStore keeps its catalog
until told otherwise), so a slow or broken registry never stalls or fails a request: the
refresher checks the registry's version and swaps in a new catalog only when it changed. When
the registry cannot be read, or suddenly holds nothing for the project (file deleted), the
server keeps serving the last good copy and ``/ready`` answers 503 until a read succeeds
(``/health``, liveness, stays 200).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from banquet.store import FeatureStore

log = logging.getLogger("banquet.server")


class RegistryRefresher:
    def __init__(self, store: FeatureStore, ttl_sec: float) -> None:
        self.store = store
        self.ttl_sec = ttl_sec
        self.healthy = False
        self.problem = "the registry has not been read yet"
        self.version = -1
        self.last_updated: str | None = None
        self.last_ok = 0.0  # time.monotonic() of the last successful check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Check the registry once; swap in the new catalog if its version changed."""
        try:
            # one read, and none of the objects when the version is unchanged (SQL registry)
            state = self.store.registry.read_if_changed(
                self.store.project, self.version, self.last_updated
            )
            if state is not None:
                version = int(state.get("version", 0))
                if version == 0 and self.version > 0:
                    raise RuntimeError(
                        f"the registry no longer holds project {self.store.project!r} "
                        "(deleted or torn down); serving the last good copy"
                    )
                self.store.refresh_registry(state=state)
                self.version, self.last_updated = version, state.get("last_updated")
        except Exception as e:  # any failure: keep the last good catalog, report unhealthy
            if self.healthy or self.problem != str(e):
                log.warning("registry refresh failed: %s", e)
            self.healthy = False
            self.problem = f"{type(e).__name__}: {e}"
            return False
        if not self.healthy and self.version >= 0:
            log.info("registry read (version %d)", self.version)
        self.healthy = True
        self.problem = ""
        self.last_ok = time.monotonic()
        return True

    def stale(self) -> bool:
        """No successful check for a while: the refresh thread is stuck on a stalled registry
        (its failures would have set ``healthy`` to False)."""
        if self.ttl_sec <= 0 or not self.last_ok:
            return False
        return time.monotonic() - self.last_ok > max(3 * self.ttl_sec, self.ttl_sec + 10.0)

    def start(self) -> None:
        if self.ttl_sec > 0 and self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="banquet-registry-refresh", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_sec):
            self.refresh()
