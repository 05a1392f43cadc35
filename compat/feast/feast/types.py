"""Feast's ``feast.types``: banquet's feature types."""

from __future__ import annotations

from banquet.types import (
    Array,
    Bool,
    Bytes,
    Float32,
    Float64,
    Int32,
    Int64,
    String,
    UnixTimestamp,
)
from feast._forward import forward

__all__ = [
    "Array",
    "Bool",
    "Bytes",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "String",
    "UnixTimestamp",
]
__getattr__ = forward(__name__, "banquet.types", "banquet")
