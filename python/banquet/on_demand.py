"""On-demand feature views: features computed at read time by a Python function.

The function receives the features of its source views and the fields of its request sources
(``RequestSource``) and returns the view's features. ``mode="pandas"``: a DataFrame in, a
DataFrame out; ``mode="python"``: a dict of lists in, a dict of lists out (``singleton=True``:
one row as a dict of values in, a dict of values out). Inputs carry every source feature under
``view__feature`` and, when no other input has that name, under ``feature``; the entity
columns given with the request come along too.

It runs in ``get_historical_features`` (inputs: the point-in-time joined features plus
``entity_df`` columns), in ``get_online_features`` (request fields given in ``entity_rows``) and
so in the feature server. Its outputs are checked against the declared schema. The registry
stores the function as source text (see ``banquet.udf`` for what it may reference); a process
runs a stored function only if it trusts its hash (``banquet.trust``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.types as pat

from banquet._naming import check_name, check_tags, check_unique, drop_empty
from banquet.errors import (
    DefinitionError,
    EntityDataError,
    FunctionNotSerializable,
    OnDemandFunctionError,
    OnDemandOutputError,
    RequestDataNotFound,
)
from banquet.feature_view import FeatureView, Projectable, Projection, projected
from banquet.field import Field
from banquet.sources import DataSource, RequestSource
from banquet.udf import UserFunction

if TYPE_CHECKING:
    from banquet.request import ResolvedRequest, ViewGroup

MODES = ("pandas", "python")
UTC_US = pa.timestamp("us", tz="UTC")


class OnDemandFeatureView(Projectable):
    """Features computed from other views' features and request data by ``udf``.

    Usually made with the ``@on_demand_feature_view`` decorator.
    """

    kind = "on-demand feature view"

    def __init__(
        self,
        *,
        name: str,
        sources: Sequence[FeatureView | RequestSource],
        schema: Sequence[Field],
        udf: Callable[..., Any] | UserFunction,
        mode: str = "pandas",
        singleton: bool = False,
        write_to_online_store: bool = False,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = check_name("OnDemandFeatureView", name)
        where = f"OnDemandFeatureView {name!r}"
        mode = str(mode).lower()
        if mode not in MODES:
            raise DefinitionError(f"{where}: mode must be 'pandas' or 'python', got {mode!r}")
        if singleton and mode != "python":
            raise DefinitionError(f"{where}: singleton=True needs mode='python'")
        if write_to_online_store:
            raise DefinitionError(
                f"{where}: write_to_online_store=True is not supported; features are computed "
                "when they are read"
            )
        self.mode = mode
        self.singleton = bool(singleton)

        fields = list(schema or [])
        if not fields or not all(isinstance(f, Field) for f in fields):
            raise DefinitionError(f"{where}: schema must be a non-empty list of Field")
        check_unique("field", where, [f.name for f in fields])
        self.features = fields

        srcs = list(sources or [])
        if not srcs:
            raise DefinitionError(
                f"{where}: sources must list at least one FeatureView or RequestSource"
            )
        for s in srcs:
            if not isinstance(s, (FeatureView, RequestSource)):
                raise DefinitionError(
                    f"{where}: sources must be feature views (optionally projected, e.g. "
                    f"view[['a']]) or RequestSource objects, got {s!r}"
                )
        check_unique(
            "source",
            where,
            [s.projected_name if isinstance(s, FeatureView) else s.name for s in srcs],
        )
        self.sources = srcs
        check_unique("request field", where, [f.name for f in self.request_fields])

        self.udf = (
            udf
            if isinstance(udf, UserFunction)
            else UserFunction.capture(udf, f"on-demand feature view {name!r}")
        )
        if not isinstance(udf, UserFunction) and not callable(udf):
            raise DefinitionError(f"{where}: udf must be a function, got {udf!r}")
        self.description = description
        self.tags = check_tags(where, tags)
        self.owner = owner
        self.projection = Projection()

    # --- sources ---------------------------------------------------------------------------

    @property
    def source_views(self) -> list[FeatureView]:
        return [s for s in self.sources if isinstance(s, FeatureView)]

    @property
    def request_sources(self) -> list[RequestSource]:
        return [s for s in self.sources if isinstance(s, RequestSource)]

    @property
    def request_fields(self) -> list[Field]:
        return [f for s in self.request_sources for f in s.schema]

    @property
    def schema(self) -> list[Field]:
        return self.features

    # --- projections (the rest in Projectable) ---------------------------------------------

    def with_join_key_map(self, join_key_map: Mapping[str, str]) -> OnDemandFeatureView:
        raise DefinitionError(
            f"on-demand feature view {self.name!r} has no join keys; map the keys of its source "
            "views instead (sources=[view.with_join_key_map({...})])"
        )

    # --- registry form ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The registry record; raises ``FunctionNotSerializable`` if the function cannot be
        stored."""
        sources = [
            {"request_source": s.to_dict()}
            if isinstance(s, RequestSource)
            else {"feature_view": s.projection_dict()}
            for s in self.sources
        ]
        return drop_empty(
            {
                "name": self.name,
                "mode": self.mode,
                "singleton": self.singleton or None,
                "sources": sources,
                "features": [f.to_dict() for f in self.features],
                "udf": self.udf.record(),
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
            }
        )

    @classmethod
    def from_dict(
        cls, d: dict[str, Any], feature_views: Mapping[str, FeatureView]
    ) -> OnDemandFeatureView:
        name = d["name"]
        sources: list[FeatureView | RequestSource] = []
        for s in d["sources"]:
            if "request_source" in s:
                req = DataSource.from_dict(s["request_source"])
                assert isinstance(req, RequestSource)
                sources.append(req)
                continue
            sources.append(
                projected(
                    feature_views,
                    s["feature_view"],
                    lambda v: (
                        f"on-demand feature view {name!r} reads feature view {v!r}, which "
                        "is not registered; apply it too"
                    ),
                )
            )
        return cls(
            name=name,
            sources=sources,
            schema=[Field.from_dict(f) for f in d["features"]],
            udf=UserFunction.from_record(d["udf"], f"on-demand feature view {name!r}", view=name),
            mode=d.get("mode", "pandas"),
            singleton=d.get("singleton", False),
            description=d.get("description", ""),
            tags=d.get("tags"),
            owner=d.get("owner", ""),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OnDemandFeatureView):
            return False
        if self is other:
            return True
        try:
            same = self.to_dict() == other.to_dict()
        except FunctionNotSerializable:  # no record to compare: only the same function is equal
            same = self.udf is other.udf
        return same and self.projection_dict() == other.projection_dict()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return (
            f"OnDemandFeatureView(name={self.name!r}, mode={self.mode!r}, "
            f"features={[f.name for f in self.features]})"
        )


def on_demand_feature_view(
    *,
    schema: Sequence[Field],
    sources: Sequence[FeatureView | RequestSource],
    mode: str = "pandas",
    name: str | None = None,
    singleton: bool = False,
    write_to_online_store: bool = False,
    description: str = "",
    tags: dict[str, str] | None = None,
    owner: str = "",
) -> Callable[[Callable[..., Any]], OnDemandFeatureView]:
    """Decorator: turn a function into an ``OnDemandFeatureView`` named after it.

    >>> from banquet import Field, RequestSource, on_demand_feature_view
    >>> from banquet.types import Float64
    >>> req = RequestSource(name="req", schema=[Field(name="amount", dtype=Float64)])
    >>> @on_demand_feature_view(sources=[req], schema=[Field(name="double", dtype=Float64)],
    ...                         mode="python")
    ... def doubled(inputs):
    ...     return {"double": [a * 2 for a in inputs["amount"]]}
    >>> doubled.udf({"amount": [1.5]})
    {'double': [3.0]}
    """

    def decorate(fn: Callable[..., Any]) -> OnDemandFeatureView:
        return OnDemandFeatureView(
            name=name or str(getattr(fn, "__name__", "")),
            sources=sources,
            schema=schema,
            udf=fn,
            mode=mode,
            singleton=singleton,
            write_to_online_store=write_to_online_store,
            description=description,
            tags=tags,
            owner=owner,
        )

    return decorate


# --- computing features ----------------------------------------------------------------------


@dataclass
class _Input:
    names: list[str]  # the names the function sees it under
    group: int  # index of the (source view) group in the resolved request
    feature: int  # index of the feature in that group
    dtype: pa.DataType | None


@dataclass
class _GroupPlan:
    index: int  # the on-demand group's index in the resolved request
    view: OnDemandFeatureView
    inputs: list[_Input]
    request_fields: list[Field]


def _plans(request: ResolvedRequest) -> list[_GroupPlan]:
    """Per on-demand group, where its inputs are; computed once per resolved request."""
    cached: list[_GroupPlan] | None = request.on_demand_plans
    if cached is not None:
        return cached
    plans = []
    for gi, g in enumerate(request.groups):
        if not g.is_on_demand:
            continue
        view: OnDemandFeatureView = g.view
        refs = request.inputs.get(gi, [])
        request_names = {f.name for f in view.request_fields}
        short = [feature for _, feature, _, _ in refs]
        inputs = []
        for (src, feature, sgi, sfi), short_name in zip(refs, short):
            names = [f"{src}__{feature}"]
            if short.count(short_name) == 1 and short_name not in request_names:
                names.append(short_name)
            bt = request.groups[sgi].features[sfi].dtype
            dtype = None if bt.document else bt.to_arrow()  # documents: dicts, inferred
            inputs.append(_Input(names, sgi, sfi, dtype))
        plans.append(_GroupPlan(gi, view, inputs, view.request_fields))
    request.on_demand_plans = plans
    return plans


def check_request_fields(
    request: ResolvedRequest, given: Sequence[str], what: str, fix: str
) -> None:
    """Raise ``RequestDataNotFound`` naming every request field that ``given`` lacks."""
    have = set(given)
    missing: dict[str, list[str]] = {}
    for plan in _plans(request):
        for f in plan.request_fields:
            if f.name not in have:
                missing.setdefault(f.name, []).append(plan.view.name)
    if missing:
        needs = "; ".join(f"{n!r} by {', '.join(sorted(set(v)))}" for n, v in missing.items())
        raise RequestDataNotFound(
            f"request field(s) {sorted(missing)} missing from {what}, needed by on-demand "
            f"feature views ({needs}); {fix}"
        )


def apply_historical(
    out: pa.Table, request: ResolvedRequest, per_group: list[list[pa.Array]]
) -> pa.Table:
    """``out`` (entity columns, then the other requested features) with the on-demand features
    computed and every feature in request order."""
    requested = set(request.names)
    entity_names = [c for c in out.column_names if c not in requested]
    n = out.num_rows
    computed: dict[int, list[pa.Array]] = {}
    for plan in _plans(request):
        inputs: dict[str, Any] = {c: out.column(c) for c in entity_names}
        for f in plan.request_fields:
            inputs[f.name] = _conform_request(out.column(f.name), f, plan.view, "entity_df")
        for inp in plan.inputs:
            for name in inp.names:
                inputs[name] = per_group[inp.group][inp.feature]
        computed[plan.index] = _compute(plan, request.groups[plan.index], pa.table(inputs), n)
    result = out.select(entity_names)
    for (gi, fi), name in zip(request.columns, request.names):
        col = computed[gi][fi] if gi in computed else out.column(name)
        result = result.append_column(name, col)
    return result


def apply_online(
    out: dict[str, list[Any]],
    request: ResolvedRequest,
    n: int,
    values: dict[str, list[Any]],
    rows: list[tuple[list[str], list[str], list[int | None]]],
) -> list[tuple[list[str], list[str], list[int | None]]]:
    """Fill ``out`` with the on-demand features (``values`` holds every decoded feature, the
    on-demand inputs included); return ``rows`` (per view: names, statuses, event times)
    without the inputs nobody asked for and with a PRESENT row for each on-demand view."""
    plans = _plans(request)
    requested = set(request.names)
    entity = {c: v for c, v in out.items() if c not in requested}
    check_request_fields(request, list(entity), "entity_rows", "give them in every entity row")
    new_rows = [
        ([name for name in names if name in requested], base, ev) for names, base, ev in rows
    ]
    new_rows = [r for r in new_rows if r[0]]
    for plan in plans:
        g = request.groups[plan.index]
        if plan.view.mode == "python":
            inputs: dict[str, Any] = dict(entity)
            for f in plan.request_fields:
                given = entity[f.name]
                plain = _plain_values(given, f)
                if plain is None:
                    arr = _to_arrow(given, f.name)
                    plain = _conform_request(arr, f, plan.view, "entity_rows").to_pylist()
                inputs[f.name] = plain
            for inp in plan.inputs:
                col = values[request.groups[inp.group].names[inp.feature]]
                for name in inp.names:
                    inputs[name] = col
            columns = _compute(plan, g, inputs, n, as_lists=True)
        else:
            table: dict[str, pa.Array] = {}
            for c, v in entity.items():
                # An extra column of mixed values is left out; keys and request fields are typed.
                with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                    table[c] = pa.array(v)
            for f in plan.request_fields:
                table[f.name] = _conform_request(
                    _to_arrow(entity[f.name], f.name), f, plan.view, "entity_rows"
                )
            for inp in plan.inputs:
                arr = pa.array(values[request.groups[inp.group].names[inp.feature]], inp.dtype)
                for name in inp.names:
                    table[name] = arr
            columns = [a.to_pylist() for a in _compute(plan, g, pa.table(table), n)]
        for name, col in zip(g.names, columns):
            out[name] = col
        new_rows.append((list(g.names), ["PRESENT"] * n, [None] * n))
    return new_rows


# Python types that already are what Arrow would make of a declared type, so python-mode
# values of these types skip the round trip through Arrow (int32/float32 need range checks).
_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "int64": (int,),
    "float64": (float, int),
    "string": (str,),
    "bytes": (bytes,),
    "bool": (bool,),
}


def _plain_values(values: Any, f: Field) -> list[Any] | None:
    """``values`` as they are when each is None or of the declared type's Python type (ints
    become floats for a float column); None when the Arrow path must check them."""
    allowed = _PLAIN_TYPES.get(f.dtype.name)
    if allowed is None or not isinstance(values, list):
        return None
    ints = False
    for v in values:
        t = type(v)
        if t is int:
            if not -(2**63) <= v < 2**63:
                return None
            ints = True
        elif v is not None and t not in allowed:
            return None
    if ints and allowed[0] is float:
        return [None if v is None else float(v) for v in values]
    if ints and allowed[0] is not int:
        return None
    return values


def _to_arrow(values: list[Any], name: str) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
        raise EntityDataError(
            f"request field {name!r} holds values of mixed or unsupported types "
            f"({values[:3]!r}{'...' if len(values) > 3 else ''}): {e}"
        ) from None


def _compute(
    plan: _GroupPlan, g: ViewGroup, inputs: Any, n: int, as_lists: bool = False
) -> list[Any]:
    """Run the view's function on ``inputs`` (a pyarrow Table, or a dict of lists for python
    mode online) and return its outputs for ``g.features``, each as the declared Arrow type
    (or, with ``as_lists``, as a list of the Python values of that type)."""
    view = plan.view
    wanted = g.features
    if n == 0:  # do not run user code on no rows; it may index the first one
        return [[] if as_lists else pa.array([], f.dtype.to_arrow()) for f in wanted]
    if view.mode == "pandas":
        frame = inputs.to_pandas()
        result = _call(view, frame)
        if type(result).__module__.split(".")[0] != "pandas" or not hasattr(result, "columns"):
            raise OnDemandOutputError(
                f"on-demand feature view {view.name!r} (mode='pandas'): the function returned "
                f"{type(result).__name__}, expected a pandas DataFrame with columns "
                f"{[f.name for f in view.features]}"
            )
        columns: Mapping[str, Any] = result
        names = [str(c) for c in result.columns]
    else:
        data = inputs.to_pydict() if isinstance(inputs, pa.Table) else inputs
        result = _singleton(view, data, n) if view.singleton else _call(view, data)
        if not isinstance(result, Mapping):
            raise OnDemandOutputError(
                f"on-demand feature view {view.name!r} (mode='python'): the function returned "
                f"{type(result).__name__}, expected a dict of lists with keys "
                f"{[f.name for f in view.features]}"
            )
        columns = result
        names = [str(c) for c in result]
    out = []
    for f in wanted:
        key = f.name if f.name in names else f"{view.name}__{f.name}"
        if key not in names:
            raise OnDemandOutputError(
                f"on-demand feature view {view.name!r}: the function's output has no column "
                f"{f.name!r} (it returned {names}); return every feature of the schema"
            )
        col = _plain_values(columns[key], f) if as_lists else None
        if col is None:
            col = _output_array(view, f, columns[key])
        if len(col) != n:
            raise OnDemandOutputError(
                f"on-demand feature view {view.name!r}: output column {f.name!r} has {len(col)} "
                f"values for {n} rows; return one value per input row"
            )
        out.append(col.to_pylist() if as_lists and not isinstance(col, list) else col)
    return out


def _call(view: OnDemandFeatureView, data: Any) -> Any:
    fn = view.udf.build()  # its errors (untrusted, not rebuildable) are not the function's
    try:
        return fn(data)
    except OnDemandFunctionError:
        raise
    except Exception as e:
        raise OnDemandFunctionError(
            f"on-demand feature view {view.name!r}: its function raised {type(e).__name__}: {e}"
        ) from e


def _singleton(view: OnDemandFeatureView, data: dict[str, list[Any]], n: int) -> dict[str, Any]:
    out: dict[str, list[Any]] = {}
    for i in range(n):
        row = _call(view, {k: v[i] for k, v in data.items()})
        if not isinstance(row, Mapping):
            raise OnDemandOutputError(
                f"on-demand feature view {view.name!r} (singleton): the function returned "
                f"{type(row).__name__} for row {i}, expected a dict of values"
            )
        for k, v in row.items():
            out.setdefault(str(k), []).append(v)
    return out


def _output_array(view: OnDemandFeatureView, f: Field, values: Any) -> pa.Array:
    try:
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arr = values
        elif view.mode == "pandas":
            arr = pa.array(values, from_pandas=True)
        else:
            arr = pa.array(values if hasattr(values, "__len__") else list(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
        raise OnDemandOutputError(
            f"on-demand feature view {view.name!r}: output column {f.name!r} holds values "
            f"that are not all of one type ({e}); the schema declares {f.dtype}"
        ) from None
    return _conform(
        arr, f, f"on-demand feature view {view.name!r}: output column", OnDemandOutputError
    )


def _conform_request(
    arr: pa.Array | pa.ChunkedArray, f: Field, view: OnDemandFeatureView, where: str
) -> pa.Array:
    if pat.is_timestamp(f.dtype.to_arrow()) and _kind(arr.type) == "string":
        arr = _parse_timestamps(arr)  # JSON clients send times as ISO strings
    return _conform(
        arr,
        f,
        f"on-demand feature view {view.name!r}: request field (from {where})",
        EntityDataError,
    )


def _parse_timestamps(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """ISO 8601 strings as UTC timestamps (no zone offset: UTC); unparsable: left as they are,
    for ``_conform`` to report."""
    for target in (UTC_US, pa.timestamp("us")):
        try:
            return arr.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return arr


def _conform(
    arr: pa.Array | pa.ChunkedArray, f: Field, what: str, error: type[Exception]
) -> pa.Array:
    """``arr`` as ``f``'s Arrow type. Only casts within a kind of value (numbers, strings,
    timestamps ...) that lose nothing: 2.0 may become an Int64, 2.5 may not. Timestamps finer
    than microseconds are truncated, as everywhere in banquet."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    target = f.dtype.to_arrow()
    if arr.type == target:
        return arr
    if pat.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if _compatible(arr.type, target):
        try:
            return arr.cast(target, safe=not _has_timestamp(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    raise error(
        f"{what} {f.name!r} has type {arr.type}, which does not convert to the declared "
        f"{f.dtype} ({target}) without loss"
    )


def _kind(t: pa.DataType) -> str:
    if pat.is_null(t):
        return "null"
    if pat.is_integer(t) or pat.is_floating(t):
        return "number"
    if pat.is_boolean(t):
        return "bool"
    if pat.is_string(t) or pat.is_large_string(t) or str(t) == "string_view":
        return "string"
    if pat.is_binary(t) or pat.is_large_binary(t) or str(t) == "binary_view":
        return "binary"
    if pat.is_timestamp(t):
        return "timestamp"
    if pat.is_list(t) or pat.is_large_list(t):
        return "list"
    return str(t)


def _compatible(source: pa.DataType, target: pa.DataType) -> bool:
    a, b = _kind(source), _kind(target)
    if a == "null":
        return True
    if a != b:
        return False
    if a == "list":
        return _compatible(source.value_type, target.value_type)
    return True


def _has_timestamp(t: pa.DataType) -> bool:
    return bool(pat.is_timestamp(t)) or (
        (pat.is_list(t) or pat.is_large_list(t)) and bool(pat.is_timestamp(t.value_type))
    )
