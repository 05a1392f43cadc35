"""The ASGI application: routing, auth, body limits, error bodies, metrics, lifespan.

A plain ASGI callable rather than a framework: a request costs a dict lookup to route and
one ``orjson`` call each way, so the feature store's own work dominates the latency. Run it
with uvicorn (``banquet serve``) or any ASGI server.

The event loop only routes, authenticates, receives bodies and sends answers: anything that
can block (parsing a body, a store call, an on-demand function) runs on worker threads, reads
under the request deadline (``pool.py``), so ``/health`` answers at once whatever the stores
do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from banquet.errors import ConfigError
from banquet.server import routes
from banquet.server.auth import TokenAuth, load_auth
from banquet.server.errors import HTTPError, classify, error_body
from banquet.server.metrics import Metrics
from banquet.server.openapi import document
from banquet.server.pool import DeadlinePool
from banquet.server.ready import Readiness
from banquet.server.refresher import RegistryRefresher

if TYPE_CHECKING:
    from banquet.feature_service import FeatureService
    from banquet.serving import OnlineResponse
    from banquet.store import FeatureStore

log = logging.getLogger("banquet.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[["FeatureServer", bytes], Any]

LOOP, READ, WRITE, ASYNC = "loop", "read", "write", "async"


@dataclass(frozen=True)
class Route:
    method: str
    handler: Handler
    # where the handler runs: LOOP (instant, no I/O), READ (the read pool, under the request
    # deadline), WRITE (the write pool: writes and materialization, bounded by the stores' own
    # timeouts, a materialization takes minutes), ASYNC (a coroutine on the loop)
    run: str = LOOP
    public: bool = False  # no token needed
    content_type: bytes = b"application/json"


ROUTES: dict[str, Route] = {
    "/get-online-features": Route("POST", routes.get_online_features, READ),
    "/push": Route("POST", routes.push, WRITE),
    "/write-to-online-store": Route("POST", routes.write_to_online_store, WRITE),
    "/materialize": Route("POST", routes.materialize, WRITE),
    "/materialize-incremental": Route("POST", routes.materialize_incremental, WRITE),
    "/health": Route("GET", routes.health, public=True),
    "/ready": Route("GET", routes.ready, ASYNC, public=True),
    "/metrics": Route("GET", routes.metrics, content_type=b"text/plain; version=0.0.4"),
    "/openapi.json": Route("GET", routes.openapi),
}


class FeatureServer:
    """``FeatureServer(store)`` is an ASGI app serving ``store``."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        registry_ttl_sec: float | None = None,
        auth: TokenAuth | None = None,
        max_request_bytes: int | None = None,
        write_threads: int = 4,
    ) -> None:
        cfg = store.config.feature_server
        _check_limits(cfg)
        self.store = store
        ttl = cfg.registry_ttl_sec if registry_ttl_sec is None else registry_ttl_sec
        self.refresher = RegistryRefresher(store, ttl)
        self.auth = auth
        self.max_request_bytes = max_request_bytes or cfg.max_request_bytes
        self.max_features = cfg.max_features_per_request
        self.max_entities = cfg.max_entities_per_request
        self.metrics = Metrics(self._gauges)
        self.reads = DeadlinePool(
            cfg.worker_threads,
            cfg.request_timeout_seconds,
            name="banquet-read",
            what="the request",
            config_key="feature_server.request_timeout_seconds",
        )
        self.readiness = Readiness(store, self.refresher, cfg.request_timeout_seconds)
        self._executor = ThreadPoolExecutor(write_threads, thread_name_prefix="banquet-write")
        self._views_of: dict[Any, list[tuple[str, str]]] = {}
        from banquet import __version__

        self.openapi_json = orjson.dumps(document(__version__))

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        path = scope["path"]
        route = ROUTES.get(path)
        headers: list[tuple[bytes, bytes]] = []
        content_type = b"application/json"
        try:
            if route is None:
                raise HTTPError(404, "NotFound", f"no endpoint {path!r}; see GET /openapi.json")
            if scope["method"] != route.method:
                headers.append((b"allow", route.method.encode()))
                raise HTTPError(
                    405, "MethodNotAllowed", f"{path} takes {route.method}, not {scope['method']}"
                )
            auth = self.auth
            if (
                auth is not None
                and not route.public
                and not auth.allows(_header(scope, b"authorization"))
            ):
                headers.append((b"www-authenticate", b'Bearer realm="banquet"'))
                raise HTTPError(
                    401, "Unauthorized", "missing or invalid bearer token (Authorization header)"
                )
            body = await self._body(scope, receive) if route.method == "POST" else b""
            run = route.run
            if run == READ:
                out = await self.reads.run(route.handler, self, body)
            elif run == LOOP:
                out = route.handler(self, body)
            elif run == ASYNC:
                out = await route.handler(self, body)
            else:
                loop = asyncio.get_running_loop()
                out = await loop.run_in_executor(self._executor, route.handler, self, body)
            if type(out) is not bytes:  # a Reply: metrics are updated on the loop only
                out.then()
                out = out.body
            status = 200
            content_type = route.content_type
        except _ClientGone:
            return
        except Exception as e:
            status, type_, message = classify(e)
            out = error_body(type_, message)
        headers += [(b"content-type", content_type), (b"content-length", str(len(out)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": out})
        self.metrics.request(
            path if route is not None else "other", status, time.perf_counter() - start
        )

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_request_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise _ClientGone
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- lifecycle and helpers -------------------------------------------------------------

    def start(self) -> None:
        """Read the registry (fails if it cannot be read) and start refreshing it."""
        _warm_up()
        if self.refresher.version < 0 and not self.refresher.refresh():
            raise RuntimeError(f"cannot read the registry: {self.refresher.problem}")
        self.refresher.start()
        self.reads.start()
        self.readiness.start()
        self._learn_trust()

    def _learn_trust(self) -> None:
        """Decide now whether each stored on-demand function may run (this may import the
        repo's files to learn their hashes, 40-70 ms), not on the first request for it."""
        policy = self.store.trust_policy
        try:
            for name, view in self.store.catalog().on_demand_feature_views.items():
                policy.reason(name, view.udf.sha256)
        except Exception:  # a request for the view reports the problem, typed
            log.debug("could not decide trust of stored functions at start", exc_info=True)

    def stop(self) -> None:
        self.refresher.stop()
        self.reads.stop()
        self.readiness.stop()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def record_freshness(
        self, wanted: list[str] | FeatureService, full: bool, resp: OnlineResponse
    ) -> None:
        """Observe the age of each view's values in this response."""
        stamps = resp.event_timestamps
        for view, name in self._view_names(wanted, full):
            ev = stamps.get(name)
            if ev is not None:
                self.metrics.served_view(view, ev)

    def _view_names(self, wanted: list[str] | FeatureService, full: bool) -> list[tuple[str, str]]:
        """(view name, output name of one of its features) per view a request reads; cached
        per registry version and feature list."""
        version = self.refresher.version
        key = (version, wanted.name if not isinstance(wanted, list) else tuple(wanted), full)
        hit = self._views_of.get(key)
        if hit is not None:
            return hit
        seen: dict[str, str] = {}
        if isinstance(wanted, list):
            for ref in wanted:
                view, _, feature = ref.partition(":")
                seen.setdefault(view, f"{view}__{feature}" if full else feature)
        else:
            for proj in wanted.feature_views:
                feats = getattr(proj, "projected_features", None) or []
                if feats:
                    name = proj.projected_name
                    seen.setdefault(
                        proj.name, f"{name}__{feats[0].name}" if full else feats[0].name
                    )
        if len(self._views_of) > 1024:
            self._views_of.clear()
        hit = self._views_of[key] = list(seen.items())
        return hit

    def _gauges(self) -> dict[str, float]:
        r = self.refresher
        return {
            "banquet_registry_healthy": 1.0 if r.healthy else 0.0,
            "banquet_registry_version": float(r.version),
            "banquet_registry_last_refresh_age_seconds": (
                time.monotonic() - r.last_ok if r.last_ok else -1.0
            ),
        }


def _check_limits(cfg: Any) -> None:
    for key in (
        "request_timeout_seconds",
        "max_features_per_request",
        "max_entities_per_request",
        "worker_threads",
    ):
        if not getattr(cfg, key) > 0:
            raise ConfigError(
                f"feature_server.{key} is {getattr(cfg, key)!r}; it must be greater than 0"
            )


def _warm_up() -> None:
    """Import what the endpoints import lazily, so the first request is not the slow one."""
    import importlib

    for name in (
        "banquet.serving",
        "banquet.request",
        "banquet.push",
        "banquet.materialize",
        "banquet.entity_data",
        "pyarrow.compute",
    ):
        importlib.import_module(name)


class _ClientGone(Exception):
    pass


def _too_large(limit: int) -> HTTPError:
    return HTTPError(
        413,
        "PayloadTooLarge",
        f"request body over {limit} bytes; send fewer rows per request or raise "
        "feature_server.max_request_bytes",
    )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def create_app(
    repo_path: str | Path | None = None,
    fs_yaml_file: str | Path | None = None,
    *,
    registry_ttl_sec: float | None = None,
) -> FeatureServer:
    """A server for the repo's feature store, with its configured auth. The registry cache
    of the store never expires by itself: the refresher re-reads it in the background."""
    from banquet.config import load_config
    from banquet.store import FeatureStore

    config = load_config(repo_path, fs_yaml_file)
    config = dataclasses.replace(
        config, registry=dataclasses.replace(config.registry, cache_ttl_seconds=0)
    )
    store = FeatureStore(config=config)
    auth = load_auth(config.feature_server.auth)
    return FeatureServer(store, registry_ttl_sec=registry_ttl_sec, auth=auth)
