"""Feast's registry -> banquet's registry states, from the protobuf bytes Feast stores.

Feast keeps each object as a protobuf message: all of them in one ``Registry`` message in a
file registry (``registry.db``), one row per object in a SQL registry's tables. Both are read
here with banquet's own wire reader (protowire.py) and the field numbers of Feast 0.67's
.proto files (``feast/core/*.proto``), then rebuilt as banquet definitions (the same checks
as an apply) and recorded per project. What is imported: entities, data sources (file, push,
request), feature views, label views, on-demand feature views (their function's source, from
Feast's ``body_text``) and feature services. Not imported: materialized intervals (Feast's
online store is not read: materialize again) and objects banquet has no equivalent for
(permissions, saved datasets, stream views); a source kind banquet lacks is a typed
NotSupportedError naming the object.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from banquet import types
from banquet.entity import Entity
from banquet.errors import DefinitionError, NotSupportedError, RegistryCorrupt
from banquet.feature_service import FeatureService
from banquet.feature_view import FeatureView
from banquet.field import Field
from banquet.labeling import ConflictPolicy, LabelView
from banquet.migrate.protowire import Msg
from banquet.on_demand import OnDemandFeatureView
from banquet.registry.base import State, empty_state
from banquet.sources import DataSource, FileSource, PushSource, RequestSource

# Registry message: field number of each repeated object kind (feast/core/Registry.proto)
REGISTRY_FIELDS = {
    "entities": 1,
    "feature_views": 6,
    "feature_services": 7,
    "on_demand_feature_views": 8,
    "data_sources": 12,
    "label_views": 19,
}
# the spec's "project" field number per kind (the data source has no spec message)
_PROJECT_FIELD = {
    "entities": 9,
    "feature_views": 2,
    "feature_services": 2,
    "on_demand_feature_views": 2,
    "data_sources": 21,
    "label_views": 2,
}
# DataSource.SourceType values (DataSource.proto)
_BATCH_FILE, _REQUEST, _PUSH = 1, 7, 9
_STRUCT_SCHEMA_TAG = "feast:struct_schema"
# module aliases a Feast on-demand function commonly reads at module level
_MODULE_ALIASES = {"pd": "pandas", "np": "numpy", "pa": "pyarrow", "json": "json", "math": "math"}

Blobs = dict[str, dict[str, list[bytes]]]  # project -> kind -> serialized objects


def is_feast_registry(raw: bytes) -> bool:
    """Whether ``raw`` parses as a Feast ``Registry`` message (and is not banquet's JSON)."""
    if not raw or raw.lstrip()[:1] == b"{":
        return False
    try:
        msg = Msg(raw)
    except RegistryCorrupt:
        return False
    return any(n in msg.fields for n in (*REGISTRY_FIELDS.values(), 3, 17))


def blobs_from_file(raw: bytes) -> Blobs:
    """A file registry's objects, grouped by their spec's project."""
    reg = Msg(raw)
    out: Blobs = {}
    for kind, number in REGISTRY_FIELDS.items():
        for blob in reg.fields.get(number, []):
            if not isinstance(blob, bytes):
                continue
            obj = Msg(blob)
            spec = obj if kind == "data_sources" else obj.msg(1)
            project = spec.str(_PROJECT_FIELD[kind]) if spec is not None else ""
            out.setdefault(project, {}).setdefault(kind, []).append(blob)
    for p in reg.msgs(17):  # projects (an empty project has no objects)
        spec = p.msg(1)
        if spec is not None:
            out.setdefault(spec.str(1), {})
    return out


SQL_TABLES = {
    "entities": "entity_proto",
    "data_sources": "data_source_proto",
    "feature_views": "feature_view_proto",
    "on_demand_feature_views": "feature_view_proto",
    "label_views": "feature_view_proto",
    "feature_services": "feature_service_proto",
}


def blobs_from_rows(rows: Iterable[tuple[str, str, bytes]]) -> Blobs:
    """A SQL registry's ``(table, project_id, proto)`` rows, grouped by project."""
    out: Blobs = {}
    for table, project, blob in rows:
        out.setdefault(project, {}).setdefault(table, []).append(bytes(blob))
    return out


# --- objects ---------------------------------------------------------------------------------


def _dtype(feature: Msg, where: str) -> types.BanquetType:
    vt = feature.int(2)
    if vt == types.ValueType.STRUCT:
        schema = json.loads(feature.map(3).get(_STRUCT_SCHEMA_TAG, "{}") or "{}")
        return types.Struct({k: _named_type(v, where) for k, v in schema.items()})
    try:
        return types.from_value_type(types.ValueType(vt))
    except (ValueError, DefinitionError):
        raise NotSupportedError(
            f"{where}: feature {feature.str(1)!r} has Feast value type {vt}, which banquet "
            "does not have; change its type in Feast (or drop it) and migrate again"
        ) from None


def _named_type(name: str, where: str) -> types.BanquetType:
    try:
        return types.from_value_type(types.ValueType[name.upper()])
    except (KeyError, DefinitionError):
        raise NotSupportedError(f"{where}: struct field type {name!r} is not supported") from None


def _field(feature: Msg, where: str) -> Field:
    tags = {k: v for k, v in feature.map(3).items() if k != _STRUCT_SCHEMA_TAG}
    return Field(
        name=feature.str(1), dtype=_dtype(feature, where), description=feature.str(4), tags=tags
    )


def _ttl(duration: Msg | None) -> timedelta | None:
    if duration is None:
        return None
    return timedelta(seconds=duration.signed(1), microseconds=duration.signed(2) // 1000)


def _source(src: Msg) -> DataSource:
    name, kind = src.str(20), src.int(1)
    common: dict[str, Any] = {
        "name": name,
        "description": src.str(23),
        "tags": src.map(24),
        "owner": src.str(25),
    }
    if kind == _PUSH:
        batch = src.msg(26)
        if batch is None:
            raise RegistryCorrupt(f"Feast push source {name!r} has no batch source")
        return PushSource(batch_source=_source(batch), **common)
    if kind == _REQUEST:
        opts = src.msg(18)
        schema = [_field(f, f"request source {name!r}") for f in (opts.msgs(3) if opts else [])]
        return RequestSource(schema=schema, **common)
    file_opts = src.msg(11)
    if kind == _BATCH_FILE or file_opts is not None:
        assert file_opts is not None, name
        return FileSource(
            path=file_opts.str(2),
            timestamp_field=src.str(3),
            created_timestamp_column=src.str(5),
            field_mapping=src.map(2) or None,
            s3_endpoint_override=file_opts.str(3) or None,
            **common,
        )
    raise NotSupportedError(
        f"Feast data source {name!r} ({src.str(17) or f'type {kind}'}) has no banquet "
        "equivalent in the migration (file, push and request sources are imported); define "
        "it in the repo and run `banquet apply`"
    )


def _entity(blob: bytes) -> Entity:
    spec = Msg(blob).msg(1) or Msg(b"")
    vt = spec.int(2)
    return Entity(
        name=spec.str(1),
        join_keys=[spec.str(4)],
        value_type=types.ValueType(vt) if vt else None,
        description=spec.str(3),
        tags=spec.map(8),
        owner=spec.str(10),
    )


def _view(blob: bytes, entities: dict[str, Entity], label: bool) -> FeatureView:
    spec = Msg(blob).msg(1) or Msg(b"")
    name = spec.str(1)
    where = f"{'label' if label else 'feature'} view {name!r}"
    # a label view's key types are left to the source, as at a banquet apply: Feast 0.67
    # records its entity columns as STRING whatever the source holds
    schema = [] if label else [_field(f, where) for f in spec.msgs(12)]
    schema += [_field(f, where) for f in spec.msgs(4)]
    ents = [entities[e] for e in spec.strs(3) if e != "__dummy"]
    common: dict[str, Any] = {
        "name": name,
        "entities": ents,
        "schema": schema,
        "ttl": _ttl(spec.msg(6)),
        "online": spec.bool(8),
        "tags": spec.map(5),
    }
    if label:
        src = spec.msg(7)
        if src is None:
            raise RegistryCorrupt(f"{where} has no source")
        return LabelView(
            source=_source(src),
            description=spec.str(9),
            owner=spec.str(10),
            labeler_field=spec.str(12),
            conflict_policy=ConflictPolicy.LAST_WRITE_WINS,
            retain_history=spec.bool(14),
            reference_feature_view=spec.str(15) or None,
            **common,
        )
    stream, batch = spec.msg(9), spec.msg(7)
    src = stream if stream is not None and stream.int(1) == _PUSH else batch
    if src is None:
        raise RegistryCorrupt(f"{where} has no batch source")
    return FeatureView(
        source=_source(src),
        description=spec.str(10),
        owner=spec.str(11),
        offline=spec.bool(13) or not spec.has(13),
        enable_validation=spec.bool(17),
        **common,
    )


def _projection(p: Msg) -> dict[str, Any]:
    record: dict[str, Any] = {"view": p.str(1)}
    if p.str(3):
        record["alias"] = p.str(3)
    feats = [f.str(1) for f in p.msgs(2)]
    if feats:
        record["features"] = feats
    if p.map(4):
        record["join_key_map"] = p.map(4)
    return record


def _udf_record(name: str, body_text: str, where: str) -> dict[str, Any]:
    """Feast's ``body_text`` (the decorated function's source) -> banquet's function record:
    the ``def`` without decorators, and the module aliases it reads."""
    import textwrap

    text = textwrap.dedent(body_text)
    try:
        tree = ast.parse(text)
    except SyntaxError:
        raise NotSupportedError(f"{where}: its stored function source does not parse") from None
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    if node is None:
        raise NotSupportedError(f"{where}: its stored source holds no 'def'")
    lines = text.splitlines()
    source = "\n".join(lines[node.lineno - 1 : node.end_lineno]) + "\n"
    used = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    globals_ = {a: {"module": m} for a, m in _MODULE_ALIASES.items() if a in used}
    return {"name": node.name, "source": source, **({"globals": globals_} if globals_ else {})}


def _on_demand(blob: bytes, views: dict[str, FeatureView]) -> OnDemandFeatureView:
    spec = Msg(blob).msg(1) or Msg(b"")
    name = spec.str(1)
    where = f"on-demand feature view {name!r}"
    sources: list[dict[str, Any]] = []
    for entry in spec.msgs(4):
        src = entry.msg(2)
        if src is None:
            raise RegistryCorrupt(f"{where}: a source entry is empty")
        if src.has(2):
            req = src.msg(2)
            assert req is not None
            sources.append({"request_source": _source(req).to_dict()})
        elif src.has(3):
            proj = src.msg(3)
            assert proj is not None
            sources.append({"feature_view": _projection(proj)})
        else:
            fv = src.msg(1)
            fv_spec = fv.msg(1) if fv is not None else None
            sources.append({"feature_view": {"view": fv_spec.str(1) if fv_spec else ""}})
    transformation = spec.msg(10)
    udf = transformation.msg(1) if transformation is not None else None
    if udf is None:
        udf = spec.msg(5)
    if udf is None or not udf.str(3):
        raise NotSupportedError(f"{where}: Feast stored no source text for its function")
    record = {
        "name": name,
        "mode": spec.str(11) or "pandas",
        "singleton": spec.bool(15) or None,
        "sources": sources,
        "features": [_field(f, where).to_dict() for f in spec.msgs(3)],
        "udf": _udf_record(name, udf.str(3), where),
        "description": spec.str(6),
        "tags": spec.map(7),
        "owner": spec.str(8),
    }
    return OnDemandFeatureView.from_dict({k: v for k, v in record.items() if v}, views)


def _service(blob: bytes, views: dict[str, Any]) -> FeatureService:
    from banquet.feature_logging import FileLoggingDestination, LoggingConfig

    spec = Msg(blob).msg(1) or Msg(b"")
    record = {
        "name": spec.str(1),
        "features": [_projection(p) for p in spec.msgs(3)],
        "description": spec.str(5),
        "tags": spec.map(4),
        "owner": spec.str(6),
    }
    service = FeatureService.from_dict(record, views)
    logging = spec.msg(7)
    dest = logging.msg(3) if logging is not None else None
    if logging is not None and dest is not None:
        rate = logging.float(1) if logging.has(1) else 1.0
        service.logging_config = LoggingConfig(
            FileLoggingDestination(
                path=dest.str(1),
                s3_endpoint_override=dest.str(2),
                partition_by=dest.strs(3),
            ),
            sample_rate=rate,
        )
    return service


def project_objects(kinds: dict[str, list[bytes]]) -> list[Any]:
    """One project's Feast objects as banquet definitions (dependencies first)."""
    entities = {e.name: e for e in map(_entity, kinds.get("entities", []))}
    entities.pop("__dummy", None)  # Feast's stand-in entity of entity-less views
    sources = [_source(Msg(b)) for b in kinds.get("data_sources", [])]
    views: dict[str, Any] = {}
    for blob in kinds.get("feature_views", []):
        v = _view(blob, entities, label=False)
        views[v.name] = v
    for blob in kinds.get("label_views", []):
        v = _view(blob, entities, label=True)
        views[v.name] = v
    plain = dict(views)
    for blob in kinds.get("on_demand_feature_views", []):
        od = _on_demand(blob, plain)
        views[od.name] = od
    services = [_service(b, views) for b in kinds.get("feature_services", [])]
    return [*entities.values(), *sources, *views.values(), *services]


def states(blobs: Blobs) -> dict[str, State]:
    """Each project's banquet registry state (no materialized intervals)."""
    out: dict[str, State] = {}
    for project, kinds in blobs.items():
        if not project:
            continue
        state = empty_state()
        for obj in project_objects(kinds):
            kind = (
                "entities"
                if isinstance(obj, Entity)
                else "data_sources"
                if isinstance(obj, DataSource)
                else "on_demand_feature_views"
                if isinstance(obj, OnDemandFeatureView)
                else "feature_views"
                if isinstance(obj, FeatureView)
                else "feature_services"
            )
            state[kind][obj.name] = obj.to_dict()
        out[project] = state
    return out
