"""Feature value types (Feast's names) and their Arrow equivalents.

``Float32``, ``Int64``, ``String`` ... are singletons; ``Array(Int64)`` builds a list type.
Every type knows its Arrow type, its Feast :class:`ValueType` and a stable name used in the
registry (``"int64"``, ``"array<float32>"``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from banquet.errors import DefinitionError, DefinitionTypeError

if TYPE_CHECKING:
    import pyarrow as pa


class ValueType(enum.IntEnum):
    """Feast's value type codes (also the type tags of serialized entity keys)."""

    UNKNOWN = 0
    BYTES = 1
    STRING = 2
    INT32 = 3
    INT64 = 4
    DOUBLE = 5
    FLOAT = 6
    BOOL = 7
    UNIX_TIMESTAMP = 8
    BYTES_LIST = 11
    STRING_LIST = 12
    INT32_LIST = 13
    INT64_LIST = 14
    DOUBLE_LIST = 15
    FLOAT_LIST = 16
    BOOL_LIST = 17
    UNIX_TIMESTAMP_LIST = 18
    NULL = 19
    MAP = 20
    JSON = 32
    STRUCT = 34


class BanquetType:
    """A feature type. Compare with ``==``; print with ``str``."""

    __slots__ = ("name", "value_type")
    # Map, Json and Struct values are documents: the online codec keeps them as JSON text
    # and serving turns them back into Python objects (banquet/documents.py).
    document = False

    def __init__(self, name: str, value_type: ValueType) -> None:
        self.name = name
        self.value_type = value_type

    def to_arrow(self) -> pa.DataType:
        import pyarrow as pa

        return _ARROW[self.name](pa)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BanquetType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return _REPR.get(self.name, self.name)

    __str__ = __repr__


class Array(BanquetType):
    """A list of a scalar type: ``Array(Int64)``."""

    __slots__ = ("base",)

    def __init__(self, base: BanquetType) -> None:
        if not isinstance(base, BanquetType) or isinstance(base, Array) or base.document:
            raise DefinitionTypeError(
                f"Array() takes a scalar banquet type such as Int64, got {base!r}; write "
                "Array(Int64), not Array(Array(...)) or Array('int64')"
            )
        super().__init__(f"array<{base.name}>", ValueType(int(base.value_type) + 10))
        self.base = base

    def to_arrow(self) -> pa.DataType:
        import pyarrow as pa

        return pa.list_(self.base.to_arrow())

    def __repr__(self) -> str:
        return f"Array({self.base!r})"

    __str__ = __repr__


String = BanquetType("string", ValueType.STRING)
Bytes = BanquetType("bytes", ValueType.BYTES)
Bool = BanquetType("bool", ValueType.BOOL)
Int32 = BanquetType("int32", ValueType.INT32)
Int64 = BanquetType("int64", ValueType.INT64)
Float32 = BanquetType("float32", ValueType.FLOAT)
Float64 = BanquetType("float64", ValueType.DOUBLE)
UnixTimestamp = BanquetType("timestamp", ValueType.UNIX_TIMESTAMP)

SCALARS: dict[str, BanquetType] = {
    t.name: t for t in (String, Bytes, Bool, Int32, Int64, Float32, Float64, UnixTimestamp)
}
_REPR = {
    "string": "String",
    "bytes": "Bytes",
    "bool": "Bool",
    "int32": "Int32",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
    "timestamp": "UnixTimestamp",
}
_ARROW: dict[str, Any] = {
    "string": lambda pa: pa.string(),
    "bytes": lambda pa: pa.binary(),
    "bool": lambda pa: pa.bool_(),
    "int32": lambda pa: pa.int32(),
    "int64": lambda pa: pa.int64(),
    "float32": lambda pa: pa.float32(),
    "float64": lambda pa: pa.float64(),
    "timestamp": lambda pa: pa.timestamp("us", tz="UTC"),
}


class _Document(BanquetType):
    """Map, Json and Struct: stored online as JSON text (``pa.string()``), served as Python
    objects; historical retrieval returns the source column as it is."""

    __slots__ = ()
    document = True

    def to_arrow(self) -> pa.DataType:
        import pyarrow as pa

        return pa.string()


class Struct(_Document):
    """Feast's typed record: ``Struct({"name": String, "age": Int64})`` (scalar or list field
    types); served as a dict in the declared field order."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, BanquetType]) -> None:
        if not isinstance(fields, dict) or not fields:
            raise DefinitionTypeError(
                f"Struct() takes a non-empty dict of field name -> type, got {fields!r}; write "
                'Struct({"name": String, "age": Int64})'
            )
        for k, t in fields.items():
            if not isinstance(k, str) or not k or any(c in k for c in ",:<>"):
                raise DefinitionTypeError(
                    f"Struct field name {k!r} must be a non-empty string without , : < >"
                )
            if not isinstance(t, BanquetType) or t.document:
                raise DefinitionTypeError(
                    f"Struct field {k!r}: type must be a scalar banquet type or Array(...), "
                    f"got {t!r}"
                )
        inner = ",".join(f"{k}:{t.name}" for k, t in fields.items())
        super().__init__(f"struct<{inner}>", ValueType.STRUCT)
        self.fields = dict(fields)

    def __repr__(self) -> str:
        return "Struct({" + ", ".join(f"{k!r}: {t!r}" for k, t in self.fields.items()) + "})"

    __str__ = __repr__


Map = _Document("map", ValueType.MAP)
Json = _Document("json", ValueType.JSON)
_REPR.update(map="Map", json="Json")


def from_name(name: str) -> BanquetType:
    """The type a registry name stands for (inverse of ``BanquetType.name``)."""
    if name in SCALARS:
        return SCALARS[name]
    if name in ("map", "json"):
        return Map if name == "map" else Json
    if name.startswith("struct<") and name.endswith(">"):
        parts = [p.partition(":") for p in name[7:-1].split(",")]
        return Struct({k: from_name(t) for k, _, t in parts})
    if name.startswith("array<") and name.endswith(">"):
        return Array(from_name(name[6:-1]))
    raise DefinitionError(
        f"unknown banquet type name {name!r}; known: {', '.join(SCALARS)} and array<T> of those"
    )


def from_value_type(vt: ValueType) -> BanquetType:
    """The banquet type for a Feast ``ValueType`` (as used by ``Entity(value_type=...)``)."""
    vt = ValueType(vt)
    if vt in (ValueType.MAP, ValueType.JSON):
        return Map if vt == ValueType.MAP else Json
    for t in SCALARS.values():
        if t.value_type == vt:
            return t
    if int(vt) > 10:
        return Array(from_value_type(ValueType(int(vt) - 10)))
    raise DefinitionError(
        f"ValueType.{vt.name} has no banquet type; use a scalar type (STRING, INT64, ...) or "
        "a list of one"
    )


def from_arrow(dt: pa.DataType) -> BanquetType:
    """The banquet type that holds values of Arrow type ``dt`` (used to infer and to check)."""
    import pyarrow as pa
    import pyarrow.types as pat

    if pat.is_large_list(dt) or pat.is_list(dt) or pat.is_fixed_size_list(dt):
        return Array(from_arrow(dt.value_type))
    checks = [
        (pat.is_string, String),
        (pat.is_large_string, String),
        (pat.is_binary, Bytes),
        (pat.is_large_binary, Bytes),
        (pat.is_boolean, Bool),
        (pat.is_int32, Int32),
        (pat.is_int64, Int64),
        (pat.is_float32, Float32),
        (pat.is_float64, Float64),
        (pat.is_timestamp, UnixTimestamp),
        (pat.is_int8, Int32),
        (pat.is_int16, Int32),
        (pat.is_uint8, Int32),
        (pat.is_uint16, Int32),
        (pat.is_uint32, Int64),
        (pat.is_float16, Float32),
    ]
    for test, t in checks:
        if test(dt):
            return t
    if hasattr(pa, "string_view") and dt in (pa.string_view(),):
        return String
    raise DefinitionTypeError(
        f"Arrow type {dt} has no banquet equivalent; cast the column to one of string, binary, "
        "bool, int32, int64, float32, float64, timestamp or a list of those"
    )


__all__ = [
    "Array",
    "BanquetType",
    "Bool",
    "Bytes",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "Json",
    "Map",
    "String",
    "Struct",
    "UnixTimestamp",
    "ValueType",
]
