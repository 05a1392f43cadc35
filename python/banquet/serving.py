"""Online retrieval: entity rows in, the latest feature values and a status per value out.

Per request: resolve the features (cached per feature list and registry version), serialize
the entity keys in Rust once per distinct key set, read every view's blobs in one call to the
online store, decode them in Rust, and enforce each view's ttl at read time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from banquet import _core
from banquet.entity_data import key_column
from banquet.errors import EntityDataError, KeyTypeError, MissingJoinKeyError
from banquet.request import ResolvedRequest, ViewGroup

if TYPE_CHECKING:
    import pandas as pd

    from banquet.store import FeatureStore

PRESENT = "PRESENT"
NULL_VALUE = "NULL_VALUE"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"


class OnlineResponse:
    """Columns in order: the entity columns given, then the features in request order.

    ``statuses[name]`` holds one of PRESENT, NULL_VALUE (stored, but null), NOT_FOUND or
    OUTSIDE_MAX_AGE (older than the view's ttl; the value is returned as None) per row, and
    ``event_timestamps[name]`` the event time (UTC µs) of each value, or None.
    """

    __slots__ = ("columns", "statuses", "event_timestamps", "_arrow")

    def __init__(
        self,
        columns: dict[str, list[Any]],
        statuses: dict[str, list[str]],
        event_timestamps: dict[str, list[int | None]],
        arrow: dict[str, pa.Array],
    ) -> None:
        self.columns = columns
        self.statuses = statuses
        self.event_timestamps = event_timestamps
        self._arrow = arrow

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, list[Any]]:
        out = dict(self.columns)
        if include_event_timestamps:
            for name, ts in self.event_timestamps.items():
                out[f"{name}__ts"] = ts
        return out

    def to_arrow(self) -> pa.Table:
        arrow = self._arrow
        return pa.table({n: arrow[n] if n in arrow else pa.array(v) for n, v in self.columns.items()})

    def to_df(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        return f"OnlineResponse({self.columns!r})"


def entity_columns(entity_rows: Any) -> dict[str, list[Any]]:
    """A dict of columns from a list of dicts or a dict of lists."""
    if isinstance(entity_rows, Mapping):
        cols = {k: list(v) if not isinstance(v, list) else v for k, v in entity_rows.items()}
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise EntityDataError(f"entity_rows columns have different lengths: { {k: len(v) for k, v in cols.items()} }")
        return cols
    if isinstance(entity_rows, Sequence) and all(isinstance(r, Mapping) for r in entity_rows):
        if not entity_rows:
            return {}
        names = list(entity_rows[0])
        for i, r in enumerate(entity_rows):
            if set(r) != set(names):
                raise EntityDataError(
                    f"entity_rows[{i}] has keys {sorted(r)}, but entity_rows[0] has {sorted(names)}; "
                    "every row must give the same keys"
                )
        return {n: [r[n] for r in entity_rows] for n in names}
    raise EntityDataError(
        "entity_rows must be a list of dicts ([{'user_id': 1}, ...]) or a dict of columns "
        f"({{'user_id': [1, 2]}}), got {type(entity_rows).__name__}"
    )


def _key_array(values: list[Any], group: ViewGroup, key: str, column: str) -> pa.Array:
    dtype = group.view.key_dtype(key)
    try:
        # Infer, then cast with the historical path's rules: pa.array(values, type=int64)
        # would silently truncate 1.5 to 1 and look up the wrong entity.
        inferred = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
        raise KeyTypeError(
            f"feature view {group.view.name!r}: entity column {column!r} must hold "
            f"{dtype} values, got {values[:3]!r}{'...' if len(values) > 3 else ''} ({e})"
        ) from None
    where = f"feature view {group.view.name!r}"
    arr = key_column(pa.table({column: inferred}), column, dtype, where).chunk(0)
    if arr.null_count:
        raise KeyTypeError(f"entity column {column!r} holds None; every entity row needs a key")
    return arr


def _stored_schema(group: ViewGroup) -> pa.Schema:
    cache = group.__dict__
    schema = cache.get("_schema")
    if schema is None:
        schema = cache["_schema"] = group.view.value_schema()
        positions = {f.name: i for i, f in enumerate(group.view.features)}
        cache["_positions"] = [positions[f.name] for f in group.features]
    return schema


def get_online_features(
    store: FeatureStore, request: ResolvedRequest, entity_rows: Any
) -> OnlineResponse:
    cols = entity_columns(entity_rows)
    n = len(next(iter(cols.values()))) if cols else 0
    groups = [g for g in request.groups if not g.is_on_demand]
    # Serialize keys once per distinct (join keys, entity columns) combination.
    keys_for: dict[tuple[Any, ...], list[bytes]] = {}
    typed: dict[str, pa.Array] = {}  # entity columns as the entities' types
    reads: list[tuple[str, list[bytes]]] = []
    for g in groups:
        jk = g.view.join_keys
        sig = tuple((k, g.view.entity_column(k), g.view.key_dtype(k)) for k in jk)
        if sig not in keys_for:
            arrays = []
            for k in jk:
                column = g.view.entity_column(k)
                if column not in cols:
                    raise MissingJoinKeyError(
                        f"feature view {g.view.name!r} needs entity column {column!r}; "
                        f"entity_rows give {sorted(cols)}"
                    )
                arr = _key_array(cols[column], g, k, column)
                arrays.append(arr)
                typed.setdefault(column, arr)
            keys_for[sig] = _core.serialize_entity_keys(jk, arrays).to_pylist()
        reads.append((g.view.name, keys_for[sig]))
    blobs_per_view = store.online_store.read(store.project, reads) if reads else []

    cols = {c: typed[c].to_pylist() if c in typed else v for c, v in cols.items()}
    out: dict[str, list[Any]] = dict(cols)
    statuses: dict[str, list[str]] = {}
    stamps: dict[str, list[int | None]] = {}
    arrow: dict[str, pa.Array] = dict(typed)
    values_by_group: dict[int, list[list[Any]]] = {}
    now_us = time.time_ns() // 1000
    for g, blobs in zip(groups, blobs_per_view):
        schema = _stored_schema(g)
        event, _created, decoded = _core.decode_values(pa.array(blobs, pa.binary()), schema)
        ev = event.cast(pa.int64()).to_pylist()
        ttl = g.view.ttl_us
        expired = [e is not None and ttl is not None and now_us - e > ttl for e in ev]
        per_feature = []
        for name, pos in zip(g.names, g.__dict__["_positions"]):
            arr = decoded[pos]
            vals = arr.to_pylist()
            st = []
            for i, v in enumerate(vals):
                if ev[i] is None:
                    st.append(NOT_FOUND)
                elif expired[i]:
                    st.append(OUTSIDE_MAX_AGE)
                    vals[i] = None
                else:
                    st.append(PRESENT if v is not None else NULL_VALUE)
            if any(expired):
                arr = pa.array(vals, arr.type)
            statuses[name] = st
            stamps[name] = ev
            arrow[name] = arr
            per_feature.append(vals)
        values_by_group[id(g)] = per_feature
    for gi, fi in request.columns:
        g = request.groups[gi]
        name = g.names[fi]
        if g.is_on_demand:
            continue
        out[name] = values_by_group[id(g)][fi]
    if any(g.is_on_demand for g in request.groups):
        from banquet.on_demand import apply_online

        apply_online(out, statuses, arrow, request, n)
        out = {**dict(cols), **{name: out[name] for name in request.names}}
    return OnlineResponse(out, statuses, stamps, arrow)
