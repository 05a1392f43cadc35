"""Online retrieval: entity rows in, the latest feature values and a status per value out.

Per request: resolve the features (cached per feature list and registry version), serialize
the entity keys in Rust once per distinct key set, read every view's blobs in one call to the
online store, decode them in Rust, and enforce each view's ttl at read time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
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
    ``event_timestamps[name]`` the event time (UTC µs) of each value, or None. Both are
    computed on first access, so a caller that only wants values does not pay for them.
    """

    __slots__ = ("columns", "_types", "_rows", "_statuses", "_stamps")

    def __init__(
        self,
        columns: dict[str, list[Any]],
        types: dict[str, pa.DataType],
        rows: list[tuple[list[str], list[str], list[int | None]]],
    ) -> None:
        self.columns = columns
        self._types = types
        self._rows = rows  # per view: (feature names, row statuses, event timestamps)
        self._statuses: dict[str, list[str]] | None = None
        self._stamps: dict[str, list[int | None]] | None = None

    @property
    def statuses(self) -> dict[str, list[str]]:
        if self._statuses is None:
            cols = self.columns
            self._statuses = {
                name: [
                    NULL_VALUE if b is PRESENT and v is None else b
                    for v, b in zip(cols[name], base)
                ]
                for names, base, _ in self._rows
                for name in names
            }
        return self._statuses

    @property
    def event_timestamps(self) -> dict[str, list[int | None]]:
        if self._stamps is None:
            self._stamps = {name: ev for names, _, ev in self._rows for name in names}
        return self._stamps

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, list[Any]]:
        out = dict(self.columns)
        if include_event_timestamps:
            for name, ts in self.event_timestamps.items():
                out[f"{name}__ts"] = ts
        return out

    def to_arrow(self) -> pa.Table:
        types = self._types
        return pa.table({n: pa.array(v, types.get(n)) for n, v in self.columns.items()})

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
            raise EntityDataError(
                f"entity_rows columns have different lengths: { {k: len(v) for k, v in cols.items()} }"
            )
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


class _Plan:
    """What a resolved request needs at read time, computed once and cached on it."""

    def __init__(self, request: ResolvedRequest) -> None:
        self.groups = [g for g in request.groups if not g.is_on_demand]
        self.codecs = [_core.ValueCodec(g.view.value_schema()) for g in self.groups]
        self.positions = []
        self.timestamps = []  # per group: {feature position: True for timestamp, False for list}
        for g in self.groups:
            where = {f.name: i for i, f in enumerate(g.view.features)}
            self.positions.append([where[f.name] for f in g.features])
            self.timestamps.append(
                {
                    i: f.dtype.name == "timestamp"
                    for i, f in enumerate(g.features)
                    if "timestamp" in f.dtype.name
                }
            )
        self.signatures = [
            tuple((k, g.view.entity_column(k), g.view.key_dtype(k)) for k in g.view.join_keys)
            for g in self.groups
        ]
        self.types = {
            name: f.dtype.to_arrow()
            for g in request.groups  # on-demand features included
            for name, f in zip(g.names, g.features)
        }
        for sig in self.signatures:
            for _, column, dtype in sig:
                if dtype is not None:
                    self.types.setdefault(column, dtype.to_arrow())
        self.on_demand = any(g.is_on_demand for g in request.groups)


def _plan(request: ResolvedRequest) -> _Plan:
    plan = request.__dict__.get("_online_plan")
    if plan is None:
        plan = request.__dict__["_online_plan"] = _Plan(request)
    return plan


_FAST_KINDS = {"int64", "int32", "string", "bytes"}


def _serialize(
    sig: tuple[Any, ...], group: ViewGroup, cols: dict[str, list[Any]], typed: dict[str, pa.Array]
) -> list[bytes]:
    names = [k for k, _, _ in sig]
    for _, column, _ in sig:
        if column not in cols:
            raise MissingJoinKeyError(
                f"feature view {group.view.name!r} needs entity column {column!r}; "
                f"entity_rows give {sorted(cols)}"
            )
    kinds = [dtype.name if dtype is not None else "" for _, _, dtype in sig]
    if all(k in _FAST_KINDS for k in kinds):
        values = [cols[c] for _, c, _ in sig]
        if all(type(v) in (int, str, bytes) for col in values for v in col):
            try:
                return _core.serialize_key_rows(names, values, kinds)  # type: ignore[no-any-return]
            except (TypeError, OverflowError):
                pass  # the general path below reports the problem precisely
    arrays = []
    for k, column, _ in sig:
        arr = _key_array(cols[column], group, k, column)
        typed.setdefault(column, arr)
        arrays.append(arr)
    return _core.serialize_entity_keys(names, arrays).to_pylist()  # type: ignore[no-any-return]


def get_online_features(
    store: FeatureStore, request: ResolvedRequest, entity_rows: Any
) -> OnlineResponse:
    cols = entity_columns(entity_rows)
    n = len(next(iter(cols.values()))) if cols else 0
    plan = _plan(request)
    keys_for: dict[tuple[Any, ...], list[bytes]] = {}
    typed: dict[str, pa.Array] = {}  # entity columns that needed converting to the key type
    reads: list[tuple[str, list[bytes]]] = []
    for g, sig in zip(plan.groups, plan.signatures):
        keys = keys_for.get(sig)
        if keys is None:
            keys = keys_for[sig] = _serialize(sig, g, cols, typed)
        reads.append((g.view.name, keys))
    blobs_per_view = store.online_store.read(store.project, reads) if reads else []

    if typed:
        cols = {c: typed[c].to_pylist() if c in typed else v for c, v in cols.items()}
    out: dict[str, list[Any]] = dict(cols)
    values: dict[str, list[Any]] = {}
    rows: list[tuple[list[str], list[str], list[int | None]]] = []
    now_us = time.time_ns() // 1000
    for g, codec, positions, ts_pos, blobs in zip(
        plan.groups, plan.codecs, plan.positions, plan.timestamps, blobs_per_view
    ):
        ev, decoded = codec.decode_rows(blobs)
        ttl = g.view.ttl_us
        base = [
            NOT_FOUND
            if e is None
            else OUTSIDE_MAX_AGE
            if ttl is not None and now_us - e > ttl
            else PRESENT
            for e in ev
        ]
        expired = OUTSIDE_MAX_AGE in base
        rows.append((g.names, base, ev))
        for j, (name, pos) in enumerate(zip(g.names, positions)):
            vals = decoded[pos]
            if expired:
                vals = [None if b is OUTSIDE_MAX_AGE else v for v, b in zip(vals, base)]
            if j in ts_pos:  # decoded as UTC microseconds: scalars, or lists of them
                if ts_pos[j]:
                    vals = [None if v is None else _datetime(v) for v in vals]
                else:
                    vals = [
                        None if v is None else [None if x is None else _datetime(x) for x in v]
                        for v in vals
                    ]
            values[name] = vals
    for name in request.names:
        if name in values:
            out[name] = values[name]
    if plan.on_demand:
        from banquet.on_demand import apply_online

        rows = apply_online(out, request, n, values, rows)
        out = {**dict(cols), **{name: out[name] for name in request.names}}
    types = plan.types
    if typed:
        types = {**types, **{c: a.type for c, a in typed.items()}}
    return OnlineResponse(out, types, rows)


def _datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
