"""Windowed aggregations offline: the specs of an aggregated view's requested features for
the Rust kernel ``_core.window_aggregate``, and its outputs in the features' types
(ARCHITECTURE.md, "Windowed aggregations")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from banquet import _core
from banquet.entity_data import flat
from banquet.errors import FeatureNotFound

if TYPE_CHECKING:
    from banquet.aggregation import Aggregation
    from banquet.feature_view import FeatureView
    from banquet.field import Field

# functions whose kernel output is the index of the winning feature row
_BY_INDEX = ("min", "max", "last")
_NUMERIC = ("sum", "mean", "stddev", "min", "max")


def requested(view: FeatureView, features: list[Field]) -> list[Aggregation]:
    """The aggregation behind each requested feature, in request order."""
    by_name = {a.feature_name: a for a in view.aggregations}
    out = []
    for f in features:
        if f.name not in by_name:
            raise FeatureNotFound(f"feature view {view.name!r} has no aggregate {f.name!r}")
        out.append(by_name[f.name])
    return out


def source_fields(view: FeatureView, aggs: list[Aggregation]) -> list[Field]:
    """The source columns ``aggs`` read, each once, in schema order."""
    cols = {a.column for a in aggs}
    return [f for f in view.source_fields if f.name in cols]


def max_window_us(aggs: list[Aggregation]) -> int:
    # a hopping window starts at floor(T, slide) - window, up to one slide before T - window
    return max((a.window_us + (a.slide_us or 0) for a in aggs), default=0)


def _kernel_values(a: Aggregation, col: pa.Array) -> pa.Array:
    """The column as the kernel reads it for ``a``: integers (and bools, timestamps) as
    int64 and floats as float64 for the numeric functions and the distinct counts; as is
    for count and last (only validity is read) and for strings."""
    t = col.type
    if a.function in ("count", "last"):
        return col
    if pa.types.is_floating(t):
        return col.cast(pa.float64())
    if pa.types.is_timestamp(t):
        return col.cast(pa.int64())
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return col.cast(pa.int64())
    if pa.types.is_dictionary(t):
        return col.cast(t.value_type)
    return col


def aggregate(
    aggs: list[Aggregation],
    columns: dict[str, pa.Array],
    entity_keys: list[pa.Array],
    entity_ts: pa.Array,
    feature_keys: list[pa.Array],
    feature_ts: pa.Array,
    feature_created: pa.Array | None,
) -> list[pa.Array]:
    """One array per aggregation, one row per entity row: the kernel's outputs, with the
    row indices of min/max/last replaced by the values they point at (the column's type)."""
    values: list[pa.Array] = []
    slots: dict[tuple[str, str], int] = {}
    specs: list[tuple[str, int, int, int | None]] = []
    for a in aggs:
        kind = "raw" if a.function in ("count", "last") else "numeric"
        if a.function in ("count_distinct", "approx_count_distinct"):
            kind = "distinct"
        slot = slots.get((a.column, kind))
        if slot is None:
            slot = slots[(a.column, kind)] = len(values)
            values.append(_kernel_values(a, flat(columns[a.column])))
        specs.append((a.function, slot, a.window_us, a.slide_us))
    outs = _core.window_aggregate(
        entity_keys, entity_ts, feature_keys, feature_ts, feature_created, values, specs
    )
    result = []
    for a, out in zip(aggs, outs, strict=True):
        if a.function in _BY_INDEX:
            out = flat(columns[a.column]).take(out)
        result.append(out)
    return result


def output_arrow_type(a: Aggregation, column_type: pa.DataType) -> pa.DataType:
    """The Arrow type of ``aggregate``'s output for ``a`` over a column of ``column_type``."""
    if a.function in ("count", "count_distinct", "approx_count_distinct"):
        return pa.int64()
    if a.function in ("mean", "stddev"):
        return pa.float64()
    if a.function == "sum":
        return pa.float64() if pa.types.is_floating(column_type) else pa.int64()
    return column_type
