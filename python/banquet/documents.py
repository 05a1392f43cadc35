"""Map, Json and Struct feature values (Feast's document types) on the online path.

The online value codec stores them as JSON text (a string column): a source's struct or map
column, or Python dicts pushed in a frame, become JSON text before encoding
(:func:`to_json_text`); serving turns the text back into Python objects (:func:`decode`):
a Map as a dict with sorted keys (as Feast's protobuf map comes back), a Struct as a dict in
its declared field order, a Json value as whatever the text holds. Historical retrieval
returns the source column unchanged (no conversion).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from banquet.errors import SchemaMismatch

if TYPE_CHECKING:
    import pyarrow as pa

    from banquet.types import BanquetType


def to_json_text(dtype: BanquetType, col: pa.Array, where: str) -> pa.Array:
    """``col`` (string JSON text, struct, map, or Python objects) as a column of JSON text;
    a Json column of text is checked to parse."""
    import pyarrow as pa
    import pyarrow.types as pat

    if pat.is_string(col.type) or pat.is_large_string(col.type):
        col = col.cast(pa.string())
        for i, text in enumerate(col.to_pylist()):
            if text is None:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                if dtype.name != "json":  # a Map/Struct column of text must hold objects
                    raise SchemaMismatch(
                        f"{where}: row {i} is not JSON text ({text[:60]!r}); a {dtype} column "
                        "holds JSON objects, a struct or a map"
                    ) from None
                raise SchemaMismatch(
                    f"{where}: row {i} is not valid JSON ({text[:60]!r}); a Json feature "
                    "holds JSON text (json.dumps(value))"
                ) from None
            _check_shape(dtype, value, where, i)
        return col
    if not (pat.is_struct(col.type) or pat.is_map(col.type) or pat.is_null(col.type)):
        raise SchemaMismatch(
            f"{where}: column has type {col.type}; a {dtype} feature takes a struct, a map, "
            "dicts or JSON text"
        )
    values = col.to_pylist()
    out: list[str | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if isinstance(v, list):  # a map column comes back as [(key, value), ...]
            v = dict(v)
        _check_shape(dtype, v, where, i)
        out.append(json.dumps(v, default=str, separators=(",", ":")))
    return pa.array(out, pa.string())


def _check_shape(dtype: BanquetType, value: Any, where: str, row: int) -> None:
    if dtype.name == "json" or value is None:
        return
    if not isinstance(value, dict):
        raise SchemaMismatch(
            f"{where}: row {row} holds {type(value).__name__}; a {dtype} feature takes a "
            "dict (JSON object)"
        )
    fields = getattr(dtype, "fields", None)
    if fields is not None:
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise SchemaMismatch(
                f"{where}: row {row} has field(s) {unknown} that {dtype} does not declare; "
                "add them to the Struct or drop them"
            )


def decode(dtype: BanquetType, values: list[Any]) -> list[Any]:
    """Stored JSON text -> Python objects (None stays None)."""
    return normalize(dtype, values)


def normalize(dtype: BanquetType, values: list[Any]) -> list[Any]:
    """Values as served: JSON text parsed (a remote server's Json values arrive as text, its
    Map / Struct values as objects), a Map's keys sorted, a Struct's in field order."""
    fields = getattr(dtype, "fields", None)
    out: list[Any] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        if isinstance(v, str):
            v = json.loads(v)
        if dtype.name == "map" and isinstance(v, dict):
            v = {k: v[k] for k in sorted(v)}
        elif fields is not None and isinstance(v, dict):
            v = {k: v.get(k) for k in fields}
        out.append(v)
    return out
