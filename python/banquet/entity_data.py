"""Entity rows as Arrow: accept any frame, find the timestamp, cast keys safely."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from banquet import types
from banquet.errors import EntityDataError, KeyTypeError, MissingJoinKeyError, TimestampColumnError

UTC_US = pa.timestamp("us", tz="UTC")
DEFAULT_TS = "event_timestamp"


def to_table(data: Any, what: str = "entity_df") -> pa.Table:
    """A pyarrow Table from pandas, polars, pyarrow or anything exporting Arrow, with unique
    column names. A column whose values do not share one type (``[1, "a"]``) or a repeated
    column name is an ``EntityDataError`` naming the column, not a raw Arrow error."""
    _unique_names(_column_names(data), what)
    try:
        table = _convert(data, what)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as e:
        column = _bad_column(data)
        where = f"{what} column {column!r}" if column is not None else what
        raise EntityDataError(
            f"{where} cannot be converted to Arrow: its values do not share one type ({e}); "
            "give each column values of a single type (e.g. all ints or all strings)"
        ) from None
    _unique_names(table.column_names, what)
    return table


def _column_names(data: Any) -> list[str]:
    """Column names as given, before any conversion (pandas refuses duplicates itself)."""
    cols = getattr(data, "columns", None)
    if cols is not None and not isinstance(data, (pa.Table, pa.RecordBatch)):
        try:
            return [str(c) for c in cols]
        except TypeError:
            return []
    return []


def _unique_names(names: list[str], what: str) -> None:
    dup = sorted(n for n, count in Counter(names).items() if count > 1)
    if dup:
        raise EntityDataError(
            f"{what} has more than one column named {', '.join(map(repr, dup))}; rename or drop "
            "the extra ones (each column name must be unique)"
        )


def _bad_column(data: Any) -> str | None:
    """The first column that does not convert on its own (for the error message)."""
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        names = list(dict.fromkeys(k for r in data for k in r))
        data = {n: [r.get(n) for r in data] for n in names}
    try:
        if isinstance(data, dict):
            columns = list(data.items())
        elif type(data).__module__.split(".")[0] == "pandas":
            columns = [(str(n), data[n]) for n in data.columns]
        else:
            return None
        for name, values in columns:
            try:
                pa.array(values, from_pandas=True)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                return str(name)
    except Exception:  # only a better message is at stake
        return None
    return None


def _convert(data: Any, what: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    mod = type(data).__module__.split(".")[0]
    if mod == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    if isinstance(data, dict):
        return pa.table(data)
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pa.Table.from_pylist(data)
    raise EntityDataError(
        f"{what} must be a pandas or polars DataFrame, a pyarrow Table, or an object exporting "
        f"Arrow (__arrow_c_stream__); got {type(data).__name__}"
    )


def timestamp_column(table: pa.Table) -> str:
    """``event_timestamp`` if present, else the only timestamp column."""
    if DEFAULT_TS in table.column_names:
        return DEFAULT_TS
    found: list[str] = [
        f.name for f in table.schema if pat.is_timestamp(f.type) or pat.is_date(f.type)
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        raise TimestampColumnError(
            f"entity_df has no timestamp column (columns: {table.column_names}); add an "
            f"'{DEFAULT_TS}' column with the time each row's features should be read as of"
        )
    raise TimestampColumnError(
        f"entity_df has several timestamp columns {found} and none named '{DEFAULT_TS}'; "
        f"rename the one to join on to '{DEFAULT_TS}'"
    )


def utc_us(arr: pa.Array | pa.ChunkedArray, what: str) -> pa.Array | pa.ChunkedArray:
    """Timestamps as ``timestamp[us, UTC]``; naive values are read as UTC, sub-µs truncated."""
    t = arr.type
    if pat.is_timestamp(t):
        if t.unit == "us" and t.tz == "UTC":
            return arr
        if t.tz is None:
            arr = arr.cast(pa.timestamp(t.unit, tz="UTC"))
        return arr.cast(UTC_US, safe=False)
    if pat.is_date(t):
        return arr.cast(pa.timestamp("s")).cast(UTC_US)
    if pat.is_string(t) or pat.is_large_string(t):
        from banquet.write_checks import parse_iso_strings  # offsets and 'Z' too, as UTC

        return parse_iso_strings(arr, what)
    raise TimestampColumnError(f"{what} has type {t}, expected a timestamp")


def key_column(
    table: pa.Table, column: str, dtype: types.BanquetType | None, where: str
) -> pa.ChunkedArray:
    """Entity column ``column`` cast to the join key's type, refusing lossy casts."""
    if column not in table.column_names:
        raise MissingJoinKeyError(
            f"{where}: entity rows have no column {column!r} (columns: {table.column_names}); "
            "add it, or map the join key to another column with with_join_key_map()"
        )
    col = table.column(column)
    if dtype is None:
        return col
    target = dtype.to_arrow()
    if col.type == target:
        return col
    if pat.is_null(col.type):
        return pa.chunked_array([pa.nulls(len(col), target)])
    if pat.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    compatible = (
        (pat.is_integer(col.type) and pat.is_integer(target))
        or (pat.is_floating(col.type) and pat.is_integer(target))  # pandas makes 1 into 1.0
        or (
            (
                pat.is_string(col.type)
                or pat.is_large_string(col.type)
                or str(col.type) == "string_view"
            )
            and pat.is_string(target)
        )
        or ((pat.is_binary(col.type) or pat.is_large_binary(col.type)) and pat.is_binary(target))
        or (pat.is_timestamp(col.type) and pat.is_timestamp(target))
    )
    if compatible:
        try:
            return col.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    raise KeyTypeError(
        f"{where}: join key column {column!r} has type {col.type}, which cannot be safely "
        f"cast to the entity's type {dtype} ({target}); convert the column first"
    )


def flat(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array (kernels take arrays, not chunked arrays); no copy if one chunk."""
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr
