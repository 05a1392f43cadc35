"""``OnlineResponse`` -> the JSON Feast's feature server returns, in one ``orjson.dumps``.

``{"metadata": {"feature_names": [...]}, "results": [{"values", "statuses",
"event_timestamps"}, ...]}``, one result per column (join keys first, then the features in
request order). As in Feast: join keys and on-demand outputs carry status PRESENT and the
epoch as event time; a missing value is null with status NOT_FOUND and the epoch; event times
are RFC 3339 UTC strings; timestamp values are Unix seconds; bytes are base64; NaN is null.

Speed: values go to orjson untouched (datetime and bytes reach ``_default`` only when a view
has such features), and each view's event times are written once for all of its features (a numpy
``datetime64[us]`` array that orjson formats in C, kept as a JSON fragment).
"""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    from banquet.serving import OnlineResponse

EPOCH = "1970-01-01T00:00:00Z"
PRESENT = "PRESENT"
NULL_VALUE = "NULL_VALUE"
_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_SERIALIZE_NUMPY
    | orjson.OPT_NAIVE_UTC
    | orjson.OPT_UTC_Z
)


def online_response(resp: OnlineResponse) -> bytes:
    columns = resp.columns
    statuses = resp.statuses
    stamps = resp.event_timestamps
    converted: dict[int, orjson.Fragment] = {}  # id(a view's event list) -> its JSON
    epochs: orjson.Fragment | None = None
    results = []
    json_names = resp.json_names
    for name, values in columns.items():
        if json_names and name in json_names:  # Json features as JSON text, as Feast's
            values = [None if v is None else json.dumps(v) for v in values]
        status = statuses.get(name)
        ev = stamps.get(name)
        if status is None or ev is None:  # join keys, on-demand outputs
            status = [NULL_VALUE if v is None else PRESENT for v in values]
            if epochs is None:
                epochs = orjson.Fragment(orjson.dumps([EPOCH] * len(values)))
            times = epochs
        else:
            hit = converted.get(id(ev))
            if hit is None:
                hit = converted[id(ev)] = _times(ev)
            times = hit
        results.append({"values": values, "statuses": status, "event_timestamps": times})
    return orjson.dumps(
        {"metadata": {"feature_names": list(columns)}, "results": results},
        default=_default,
        option=_OPTIONS,
    )


def _times(ev: list[int | None]) -> orjson.Fragment:
    """A view's event times as a ready JSON array, written once for all its features."""
    if None in ev:
        ev = [0 if e is None else e for e in ev]
    return orjson.Fragment(orjson.dumps(np.array(ev, dtype="datetime64[us]"), option=_OPTIONS))


def _default(value: Any) -> Any:
    """Values orjson does not write the way Feast does (or at all)."""
    if isinstance(value, datetime):
        return math.floor(value.timestamp())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy / pyarrow values from on-demand functions
        return value.tolist()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)
