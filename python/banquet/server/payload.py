"""Request bodies: JSON parsing, field checks, and push frames (JSON columns -> Arrow).

Everything a client can get wrong is caught here or by the feature store's typed errors, and
reported as a 400 naming the field; nothing reaches a store before the whole body passed.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from banquet.errors import TimestampColumnError
from banquet.server.errors import HTTPError, bad_request
from banquet.write_checks import RANGE_TEXT, parse_iso

if TYPE_CHECKING:
    from banquet.feature_view import FeatureView

UTC_US = pa.timestamp("us", tz="UTC")
_MAX_US = 253402300799999999  # 9999-12-31T23:59:59.999999Z
_MIN_US = -62135596800000000  # 0001-01-01T00:00:00Z
_SCALARS = (str, int, float, bool, type(None))
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise bad_request("the request body is empty; send a JSON object", "InvalidJSON")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"the request body is not valid JSON: {e}", "InvalidJSON") from None
    if not isinstance(data, dict):
        raise bad_request(f"the request body must be a JSON object, got {_kind(data)}")
    return data


def string(req: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = req.get(key)
    if value is None:
        if required:
            raise bad_request(f"missing required field {key!r}")
        return None
    if not isinstance(value, str) or not value:
        raise bad_request(f"field {key!r} must be a non-empty string, got {_kind(value)}")
    return value


def boolean(req: dict[str, Any], key: str, default: bool) -> bool:
    value = req.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"field {key!r} must be true or false, got {_kind(value)}")
    return value


def strings(req: dict[str, Any], key: str) -> list[str] | None:
    value = req.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"field {key!r} must be a list of strings, got {_kind(value)}")
    return value


def columns(req: dict[str, Any], key: str, *, scalars_only: bool) -> dict[str, list[Any]]:
    """A JSON object of equally long lists (``entities``, ``df``)."""
    value = req.get(key)
    if value is None:
        raise bad_request(f"missing required field {key!r} (an object of column name -> list)")
    if not isinstance(value, dict):
        raise bad_request(f"field {key!r} must be an object of column name -> list of values")
    lengths = {}
    for name, col in value.items():
        if not isinstance(col, list):
            raise bad_request(f"{key}.{name} must be a list of values, got {_kind(col)}")
        if scalars_only:
            bad = next((v for v in col if not isinstance(v, _SCALARS)), None)
            if bad is not None:
                raise bad_request(
                    f"{key}.{name} must hold scalar values (numbers, strings), got {_kind(bad)}"
                )
        lengths[name] = len(col)
    if len(set(lengths.values())) > 1:
        raise bad_request(f"the lists in {key!r} must have the same length, got {lengths}")
    return value


def timestamp(value: Any, where: str) -> datetime:
    """An ISO 8601 time (naive means UTC) or Unix seconds."""
    return _EPOCH + timedelta(microseconds=_to_us(value, where))


# --- push frames -----------------------------------------------------------------------------


def frame(df: dict[str, list[Any]], views: list[FeatureView]) -> pa.Table:
    """The pushed columns as an Arrow table, typed where JSON cannot say the type.

    Timestamps (the source's timestamp and created columns, timestamp features) may be ISO
    8601 strings or Unix seconds; bytes features are base64 strings (as the server returns
    them). Other columns are inferred and left to the feature store's safe casts. Columns no
    view reads are dropped. Keys and event times must not be null.
    """
    kinds: dict[str, str] = {}
    required: set[str] = set()
    for v in views:
        src = v.batch_source
        for k in v.join_keys:
            kinds.setdefault(k, "key")
            required.add(k)
        kinds[src.timestamp_field] = "ts"
        required.add(src.timestamp_field)
        if src.created_timestamp_column:
            kinds[src.created_timestamp_column] = "ts"
        for f in v.features:
            kinds.setdefault(f.name, _feature_kind(f.dtype.to_arrow()))
    arrays: dict[str, pa.Array] = {}
    for name, values in df.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        where = f"df.{name}"
        if name in required and any(v is None for v in values):
            raise bad_request(f"{where} holds null; every pushed row needs a value here")
        arrays[name] = _column(values, kind, where)
    return pa.table(arrays)


def _feature_kind(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "ts"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _feature_kind(t.value_type)
        return f"list_{inner}" if inner in ("ts", "bytes") else "any"
    return "any"


def _column(values: list[Any], kind: str, where: str) -> pa.Array:
    if kind == "ts":
        return pa.array([None if v is None else _to_us(v, where) for v in values], UTC_US)
    if kind == "bytes":
        return pa.array([_b64(v, where) for v in values], pa.binary())
    if kind in ("list_ts", "list_bytes"):
        out: list[list[Any] | None] = []
        for v in values:
            if v is None:
                out.append(None)
                continue
            if not isinstance(v, list):
                raise bad_request(f"{where} must hold lists, got {_kind(v)}")
            if kind == "list_ts":
                out.append([None if x is None else _to_us(x, where) for x in v])
            else:
                out.append([_b64(x, where) for x in v])
        inner = UTC_US if kind == "list_ts" else pa.binary()
        return pa.array(out, pa.list_(inner))
    if any(isinstance(v, dict) for v in values):
        raise bad_request(f"{where} holds an object; send scalars or lists of scalars")
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as e:
        raise bad_request(
            f"{where}: values of mixed or unsupported types ({_one_line(e)}); send one JSON "
            "type per column"
        ) from None


def _to_us(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise bad_request(
            f"{where} must hold ISO 8601 times or Unix seconds, got {_kind(value)}",
        )
    if isinstance(value, str):
        try:
            us = parse_iso(value, where)
        except TimestampColumnError as e:
            raise bad_request(f"{e} (or send Unix seconds)") from None
    else:
        if isinstance(value, float) and not math.isfinite(value):
            raise bad_request(f"{where}: {value} is not a time")
        us = round(value * 1_000_000) if isinstance(value, float) else value * 1_000_000
    if not _MIN_US <= us <= _MAX_US:
        raise _out_of_range(where, value)
    return us


def _out_of_range(where: str, value: Any) -> HTTPError:
    shown = value[:40] if isinstance(value, str) else value
    return bad_request(
        f"{where}: {shown!r} is not a time banquet can store; event and created times must lie "
        f"in {RANGE_TEXT}",
        "InvalidTimestamp",
    )


def _b64(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{where} must hold base64 strings, got {_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{where}: {value[:20]!r}... is not valid base64") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200]
