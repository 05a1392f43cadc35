"""Online retrieval: entity rows in, the latest feature values and a status per value out.

Per request: resolve the features (cached per feature list and registry version) into a plan
(cached on the resolved request) whose Rust half, ``_core.OnlinePlan``, does the rest. On the
SQLite store one Rust call serializes the keys, looks them up with cached prepared
statements, decodes the blobs, enforces each view's ttl at read time and builds the Python
lists. Other stores (and entity rows the fast path does not take) go the general way: keys
serialized once per distinct key set, one ``read`` call for all views, then the same Rust
decode-and-assemble.
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
from banquet.write_checks import END_US, MIN_US

if TYPE_CHECKING:
    import pandas as pd

    from banquet.store import FeatureStore

PRESENT = "PRESENT"
NULL_VALUE = "NULL_VALUE"
NOT_FOUND = "NOT_FOUND"
OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
INVALID = "INVALID"  # a stored value that cannot be rendered (Feast's status of that name)


class OnlineResponse:
    """Columns in order: the entity rows' join keys, then the features in request order (as
    Feast's: request fields for on-demand views and other entity-row keys are not echoed).

    ``statuses[name]`` holds one of PRESENT, NULL_VALUE (stored, but null), NOT_FOUND,
    OUTSIDE_MAX_AGE (older than the view's ttl; the value is returned as None) or INVALID (a
    stored time outside the representable range, written before writes were checked; the
    value is returned as None) per row, and
    ``event_timestamps[name]`` the event time (UTC µs) of each value, or None. Both are
    computed on first access, so a caller that only wants values does not pay for them.
    """

    __slots__ = (
        "columns",
        "_types",
        "_rows",
        "_ttls",
        "_now_us",
        "_invalid",
        "_statuses",
        "_stamps",
        "json_names",
    )

    def __init__(
        self,
        columns: dict[str, list[Any]],
        types: dict[str, pa.DataType],
        rows: list[tuple[list[str], list[str] | None, list[int | None]]],
        ttls: Sequence[int | None] = (),
        now_us: int = 0,
        invalid: dict[str, list[int]] | None = None,
    ) -> None:
        self.columns = columns
        self._types = types
        # per view: (feature names, row statuses, event timestamps); statuses None means
        # "work them out from the event times, the view's ttl (ttls[i]) and now_us"
        self._rows = rows
        self._ttls = ttls
        self._now_us = now_us
        self._invalid = invalid  # output name -> rows whose stored value was unrenderable
        self._statuses: dict[str, list[str]] | None = None
        self._stamps: dict[str, list[int | None]] | None = None
        # Json features: the HTTP body carries them as JSON text, as Feast's server does
        self.json_names: tuple[str, ...] = ()

    @property
    def statuses(self) -> dict[str, list[str]]:
        if self._statuses is None:
            cols = self.columns
            out: dict[str, list[str]] = {}
            for i, (names, base, ev) in enumerate(self._rows):
                if base is None:
                    base = base_statuses(ev, self._ttls[i], self._now_us)
                for name in names:
                    out[name] = [
                        NULL_VALUE if b is PRESENT and v is None else b
                        for v, b in zip(cols[name], base)
                    ]
            for name, bad in (self._invalid or {}).items():
                if name in out:
                    for i in bad:
                        out[name][i] = INVALID
            self._statuses = out
        return self._statuses

    @property
    def event_timestamps(self) -> dict[str, list[int | None]]:
        if self._stamps is None:
            self._stamps = {name: ev for names, _, ev in self._rows for name in names}
        return self._stamps

    def to_dict(self, include_event_timestamps: bool = False) -> dict[str, list[Any]]:
        """The columns as lists. ``include_event_timestamps``: as Feast's, each column is
        followed by ``name__ts``, its event times in whole Unix seconds, 0 where there is none
        (join keys, on-demand outputs, values not found)."""
        if not include_event_timestamps:
            return dict(self.columns)
        return self._seconds(self.columns)

    def _seconds(self, columns: Mapping[str, Any]) -> dict[str, Any]:
        """``columns`` with each one's ``__ts`` column (Unix seconds) after it."""
        stamps = self.event_timestamps
        out: dict[str, Any] = {}
        for name, values in columns.items():
            out[name] = values
            ev = stamps.get(name)
            out[f"{name}__ts"] = (
                [0] * len(self.columns[name])
                if ev is None
                else [0 if e is None else e // 1_000_000 for e in ev]  # floor, as Feast's
            )
        return out

    def to_arrow(self, include_event_timestamps: bool = False) -> pa.Table:
        """The columns in their declared Arrow types (a Float32 feature stays float32)."""
        types = self._types
        cols: dict[str, Any] = {n: pa.array(v, types.get(n)) for n, v in self.columns.items()}
        if include_event_timestamps:
            cols = {
                n: pa.array(v, pa.int64()) if n not in cols else v
                for n, v in self._seconds(cols).items()
            }
        return pa.table(cols)

    def to_df(self, include_event_timestamps: bool = False) -> pd.DataFrame:
        """Feast's frame: ``pandas.DataFrame(to_dict(...))``, so pandas infers the dtypes
        from the Python values as with Feast (a Float32 feature is float64, an integer column
        holding None float64) and a list feature's cells are Python lists."""
        import pandas as pd

        return pd.DataFrame(self.to_dict(include_event_timestamps))

    def __repr__(self) -> str:
        return f"OnlineResponse({self.columns!r})"


def base_statuses(ev: list[int | None], ttl: int | None, now_us: int) -> list[str]:
    """Per row: NOT_FOUND, OUTSIDE_MAX_AGE (older than ``ttl`` at ``now_us``) or PRESENT."""
    return [
        NOT_FOUND
        if e is None
        else OUTSIDE_MAX_AGE
        if ttl is not None and now_us - e > ttl
        else PRESENT
        for e in ev
    ]


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
        self.signatures = [
            tuple((k, g.view.entity_column(k), g.view.key_dtype(k)) for k in g.view.join_keys)
            for g in self.groups
        ]
        distinct: dict[tuple[Any, ...], int] = {}
        for sig in self.signatures:
            distinct.setdefault(sig, len(distinct))
        where: dict[str, tuple[int, int]] = {}  # output name -> (group, field position)
        self.timestamps: list[tuple[str, bool]] = []  # (name, scalar) for timestamp outputs
        for gi, g in enumerate(self.groups):
            pos = {f.name: i for i, f in enumerate(g.view.features)}
            for name, f in zip(g.names, g.features):
                where[name] = (gi, pos[f.name])
                if "timestamp" in f.dtype.name:
                    self.timestamps.append((name, f.dtype.name == "timestamp"))
        requested = set(request.names)  # built once: per name it made the plan quadratic
        self.core = _core.OnlinePlan(
            [
                (
                    [k for k, _, _ in sig],
                    [c for _, c, _ in sig],
                    [d.name if d is not None else "" for _, _, d in sig],
                )
                for sig in distinct
            ],
            [
                (g.view.storage_name, distinct[sig], g.view.value_schema(), _ttl(g))
                for g, sig in zip(self.groups, self.signatures)
            ],
            # requested features first, then inputs of on-demand views nobody asked for
            [(name, *where[name]) for name in request.names if name in where]
            + [(name, *w) for name, w in where.items() if name not in requested],
            # aggregated views: tile blobs, merged in Rust at read time (online/tiles.py)
            [_tile_specs(g) for g in self.groups],
        )
        self.outputs = set(where)
        self.extra = [name for name in where if name not in requested]
        self.ttls = [_ttl(g) for g in self.groups]
        self.types = {
            name: f.dtype.to_arrow()
            for g in request.groups  # on-demand features included
            for name, f in zip(g.names, g.features)
        }
        for sig in self.signatures:
            for _, column, dtype in sig:
                if dtype is not None:
                    self.types.setdefault(column, dtype.to_arrow())
        # Map / Json / Struct outputs: JSON text decoded to Python objects (documents.py)
        self.documents = [
            (name, f.dtype)
            for g in self.groups
            for name, f in zip(g.names, g.features)
            if f.dtype.document
        ]
        for name, _ in self.documents:
            self.types.pop(name, None)
        self.json_names = tuple(n for n, t in self.documents if t.name == "json")
        self.on_demand = any(g.is_on_demand for g in request.groups)


def _tile_specs(g: ViewGroup) -> list[tuple[str, str, int, int]] | None:
    if not g.view.is_aggregated:
        return None
    from banquet.online.tiles import specs

    return specs(g.view)


def _ttl(g: ViewGroup) -> int | None:
    """The ttl applied at read time: none for aggregated views (their window governs)."""
    return None if g.view.is_aggregated else g.view.ttl_us


def _plan(request: ResolvedRequest) -> _Plan:
    plan: _Plan | None = request.online_plan
    if plan is None:
        plan = request.online_plan = _Plan(request)
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
                return _core.serialize_key_rows(names, values, kinds)
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
    plan = _plan(request)
    online = store.online_store
    now_us = time.time_ns() // 1000
    native = online.fast_reader()
    got = (
        plan.core.serve(native, store.project, entity_rows, now_us) if native is not None else None
    )
    types = plan.types
    if got is None:
        got, types = _read_general(store, plan, entity_rows, now_us)
    out, evs = got
    invalid: dict[str, list[int]] = {}
    for g, ev in zip(plan.groups, evs):
        _drop_unrenderable(g.names, ev, out, invalid)
    if plan.documents:
        from banquet.documents import decode

        for name, dtype in plan.documents:
            out[name] = decode(dtype, out[name])
    for name, scalar in plan.timestamps:  # decoded as UTC microseconds
        vals = out[name]
        out[name] = (
            [None if v is None else _datetime(v) for v in vals]
            if scalar
            else [
                None if v is None else [None if x is None else _datetime(x) for x in v]
                for v in vals
            ]
        )
        if _BAD in out[name] or not scalar and any(v and _BAD in v for v in out[name]):
            out[name] = _invalid_values(out[name], scalar, invalid.setdefault(name, []))
    rows: list[tuple[list[str], list[str] | None, list[int | None]]] = [
        (g.names, None, ev) for g, ev in zip(plan.groups, evs)
    ]
    if plan.on_demand:
        from banquet.on_demand import apply_online

        n = len(next(iter(out.values()))) if out else 0
        entity = {k: v for k, v in out.items() if k not in plan.outputs}
        full = [
            (names, base_statuses(ev, ttl, now_us), ev)
            for (names, _, ev), ttl in zip(rows, plan.ttls)
        ]
        # out: the entity columns and the requested features; values: every decoded
        # feature, the on-demand views' inputs included
        values = out
        out = {**entity, **{name: values[name] for name in request.names if name in values}}
        full = apply_online(out, request, n, values, full)
        keys = request.entity_keys
        out = {
            **{k: v for k, v in entity.items() if k in keys},
            **{name: out[name] for name in request.names},
        }
        resp = OnlineResponse(out, types, list(full), (), now_us, invalid or None)
    else:
        for name in plan.extra:
            del out[name]
        keys = request.entity_keys
        for name in [k for k in out if k not in plan.outputs and k not in keys]:
            del out[name]  # an entity-row key that is no join key: Feast does not echo it
        resp = OnlineResponse(out, types, rows, plan.ttls, now_us, invalid or None)
    if plan.json_names:
        resp.json_names = plan.json_names
    return resp


def _read_general(
    store: FeatureStore, plan: _Plan, entity_rows: Any, now_us: int
) -> tuple[tuple[dict[str, list[Any]], list[list[int | None]]], dict[str, pa.DataType]]:
    """Any store, any entity rows: keys serialized in Python-facing steps (converting and
    checking entity values), one ``read`` for all views, then Rust decodes and assembles."""
    cols = entity_columns(entity_rows)
    keys_for: dict[tuple[Any, ...], list[bytes]] = {}
    typed: dict[str, pa.Array] = {}  # entity columns that needed converting to the key type
    reads: list[tuple[str, list[bytes]]] = []
    for g, sig in zip(plan.groups, plan.signatures):
        keys = keys_for.get(sig)
        if keys is None:
            keys = keys_for[sig] = _serialize(sig, g, cols, typed)
        reads.append((g.view.storage_name, keys))
    blobs = store.online_store.read(store.project, reads) if reads else []
    types = plan.types
    if typed:
        cols = {c: typed[c].to_pylist() if c in typed else v for c, v in cols.items()}
        types = {**types, **{c: a.type for c, a in typed.items()}}
    return plan.core.assemble(cols, blobs, now_us), types


def _datetime(us: int) -> datetime | object:
    if MIN_US <= us < END_US:
        return _EPOCH + timedelta(microseconds=us)
    return _BAD


def _drop_unrenderable(
    names: list[str], ev: list[int | None], out: dict[str, list[Any]], invalid: dict[str, list[int]]
) -> None:
    """Rows of a view whose stored event time is outside the representable range (written
    before writes were checked) are served as None with status INVALID, so one such row
    never fails the batch: its event time becomes None and its values None."""
    try:  # the common case in two C-speed passes (a None, i.e. NOT_FOUND, raises)
        times: list[int] = ev  # type: ignore[assignment]
        if not times or (min(times) >= MIN_US and max(times) < END_US):
            return
    except TypeError:
        pass
    bad = [i for i, e in enumerate(ev) if e is not None and not MIN_US <= e < END_US]
    for i in bad:
        ev[i] = None
    if bad:
        for name in names:
            col = out.get(name)
            if col is not None:
                for i in bad:
                    col[i] = None
            invalid.setdefault(name, []).extend(bad)


def _invalid_values(vals: list[Any], scalar: bool, bad: list[int]) -> list[Any]:
    """Timestamp values outside the representable range -> None, their rows noted in ``bad``
    (a list value with one such element is dropped whole: it cannot be shown faithfully)."""
    fixed = []
    for i, v in enumerate(vals):
        if v is _BAD or not scalar and v and _BAD in v:
            bad.append(i)
            v = None
        fixed.append(v)
    return fixed


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_BAD = object()  # a decoded time outside the representable range
