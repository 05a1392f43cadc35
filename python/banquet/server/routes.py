"""The endpoints: each takes the request body and returns the response body (JSON bytes).

They run synchronously on worker threads, never on the event loop (see ``app.ROUTES``):
reads in the read pool under the request deadline, writes and materialization in the write
pool; only /health, /metrics and /openapi.json (no I/O) run on the loop. Every client mistake
raises a typed error before anything is written or read; ``errors.classify`` turns it into
the status code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from banquet.server import payload
from banquet.server.encode import dumps, online_response
from banquet.server.errors import HTTPError, bad_request

if TYPE_CHECKING:
    from banquet.feature_service import FeatureService
    from banquet.server.app import FeatureServer

NULL = b"null"  # what Feast's server answers to writes
_PUSH_MODES = {"online": "ONLINE", "offline": "OFFLINE", "online_and_offline": "ONLINE_AND_OFFLINE"}


class Reply(NamedTuple):
    """A response body and what the event loop does once it has it (metrics live there)."""

    body: bytes
    then: Callable[[], None]


def get_online_features(server: FeatureServer, body: bytes) -> Reply:
    req = payload.json_object(body)
    features = payload.strings(req, "features")
    service_name = payload.string(req, "feature_service", required=False)
    if (features is None) == (service_name is None):
        raise bad_request(
            "give exactly one of 'features' (a list of 'view:feature') or 'feature_service'"
        )
    store = server.store
    wanted: list[str] | FeatureService = (
        store.get_feature_service(service_name, allow_cache=True)
        if service_name is not None
        else features  # type: ignore[assignment]
    )
    _check_size(server, wanted, req.get("entities"))  # before any per-value work or store call
    entities = payload.columns(req, "entities", scalars_only=True)
    full = payload.boolean(req, "full_feature_names", False)
    resp = store.get_online_features(wanted, entities, full_feature_names=full)
    return Reply(online_response(resp), lambda: server.record_freshness(wanted, full, resp))


def _check_size(server: FeatureServer, wanted: list[str] | FeatureService, entities: Any) -> None:
    """413 beyond feature_server.max_features_per_request / max_entities_per_request."""
    if isinstance(wanted, list):
        n_features = len(wanted)
    else:
        n_features = sum(len(v.projected_features) for v in wanted.feature_views)
    if n_features > server.max_features:
        raise HTTPError(
            413,
            "TooManyFeatures",
            f"the request asks for {n_features} features; the limit is {server.max_features} "
            "(feature_server.max_features_per_request): split the request or raise the limit",
        )
    rows = 0
    if isinstance(entities, dict):
        rows = max((len(c) for c in entities.values() if isinstance(c, list)), default=0)
    if rows > server.max_entities:
        raise HTTPError(
            413,
            "TooManyEntities",
            f"the request holds {rows} entity rows; the limit is {server.max_entities} "
            "(feature_server.max_entities_per_request): split the request or raise the limit",
        )


def push(server: FeatureServer, body: bytes) -> bytes:
    from banquet.sources import PushSource
    from banquet.store import PushMode

    req = payload.json_object(body)
    name = payload.string(req, "push_source_name")
    df = payload.columns(req, "df", scalars_only=False)
    to = req.get("to", "online")
    if to not in _PUSH_MODES:
        raise bad_request(f"field 'to' must be one of {sorted(_PUSH_MODES)}, got {to!r}")
    store = server.store
    source = store.catalog().get("data_sources", name)  # type: ignore[arg-type]
    if not isinstance(source, PushSource):
        raise bad_request(
            f"data source {name!r} is a {type(source).__name__}, not a push source",
            "NotAPushSource",
        )
    overwrite = payload.boolean(req, "overwrite", False)
    views = [v for v in store.list_feature_views(allow_cache=True) if v.source.name == name]
    frame = payload.frame(df, views)
    store.push(name, frame, to=PushMode[_PUSH_MODES[to]], overwrite=overwrite)  # type: ignore[arg-type]
    return NULL


def write_to_online_store(server: FeatureServer, body: bytes) -> bytes:
    req = payload.json_object(body)
    name = payload.string(req, "feature_view_name")
    df = payload.columns(req, "df", scalars_only=False)
    overwrite = payload.boolean(req, "overwrite", False)
    view = server.store.get_feature_view(name, allow_registry_cache=True)  # type: ignore[arg-type]
    server.store.write_to_online_store(view.name, payload.frame(df, [view]), overwrite=overwrite)
    return NULL


def materialize(server: FeatureServer, body: bytes) -> bytes:
    req = payload.json_object(body)
    start = payload.timestamp(payload.string(req, "start_ts"), "start_ts")
    end = payload.timestamp(payload.string(req, "end_ts"), "end_ts")
    if start > end:
        raise bad_request(f"start_ts {start.isoformat()} is after end_ts {end.isoformat()}")
    views = _online_views(server, req)
    overwrite = payload.boolean(req, "overwrite", False)
    server.store.materialize(start, end, feature_views=views, overwrite=overwrite)
    return NULL


def materialize_incremental(server: FeatureServer, body: bytes) -> bytes:
    req = payload.json_object(body)
    end = payload.timestamp(payload.string(req, "end_ts"), "end_ts")
    views = _online_views(server, req)
    server.store.materialize_incremental(end, feature_views=views)
    return NULL


def _online_views(server: FeatureServer, req: dict[str, Any]) -> list[str] | None:
    names = payload.strings(req, "feature_views")
    for name in names or []:
        view = server.store.get_feature_view(name, allow_registry_cache=True)  # unknown: 404
        if not view.online:
            raise bad_request(f"feature view {name!r} has online=False; it cannot be materialized")
    return names


def health(server: FeatureServer, body: bytes) -> bytes:
    r = server.refresher
    if not r.healthy:  # the details (addresses, users) go to the server log, not the body
        kind = r.problem.partition(":")[0] if ":" in r.problem else "not read yet"
        raise HTTPError(503, "RegistryUnavailable", f"the registry cannot be read ({kind})")
    return dumps({"status": "ok", "registry_version": r.version})


async def ready(server: FeatureServer, body: bytes) -> bytes:
    """Readiness: the registry is current and the online store answers (``ready.py``)."""
    return await server.readiness.check()


def metrics(server: FeatureServer, body: bytes) -> bytes:
    return server.metrics.render()


def openapi(server: FeatureServer, body: bytes) -> bytes:
    return server.openapi_json
