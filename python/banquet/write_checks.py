"""The checks every write path runs before anything is written: push (online and offline),
``write_to_online_store``, the HTTP write endpoints and materialization.

* Event and created times must lie in the representable range ``[1678-01-01, 2262-01-01)``
  UTC: inside it every layer can hold and render them (the stores, the JSON encoder,
  numpy/pandas ``datetime64[ns]``, Python ``datetime`` in any time zone). A value outside it
  once broke serving of its key for good (the encoder could not write it, and being "newer"
  it could not be replaced).
* Event times may not lie further ahead of now than ``online_store.max_future_skew``
  (default one day; ``null`` turns this part off): a wrongly future-dated value would win
  over every real one until that date.
* Entity keys and event times may not be null (they were dropped silently).
* Feature values must fit their declared type (``1e300`` into ``Float32`` became ``inf``).

Each failure is a typed error naming the column, the offending value and the fix; the
caller has written nothing yet.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from banquet.errors import InvalidTimestamp, NullKeyError, TimestampColumnError, ValueOutOfRange

if TYPE_CHECKING:
    from banquet.config import RepoConfig

UTC_US = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MIN_US = -9_183_110_400_000_000  # 1678-01-01T00:00:00Z (inclusive)
END_US = 9_214_646_400_000_000  # 2262-01-01T00:00:00Z (exclusive)
RANGE_TEXT = "1678-01-01T00:00:00Z (inclusive) to 2262-01-01T00:00:00Z (exclusive)"
FIX_FUTURE = (
    "correct the times (or, if such times are meant, raise online_store.max_future_skew in "
    "feature_store.yaml; null turns the check off)"
)


def iso(us: int) -> str:
    """Any int64 µs as an ISO 8601 UTC text (numpy renders years Python cannot)."""
    whole = us % 1_000_000 == 0
    return f"{np.datetime64(us // 1_000_000, 's') if whole else np.datetime64(us, 'us')}Z"


def max_future_skew_us(config: RepoConfig) -> int | None:
    seconds = getattr(config.online_store, "max_future_skew_seconds", None)
    return None if seconds is None else int(seconds * 1_000_000)


def check_times(
    event_ts: pa.Array,
    created_ts: pa.Array | None,
    where: str,
    skew_us: int | None,
    *,
    now_us: int | None = None,
    fix_future: str = FIX_FUTURE,
    written: str = "Nothing was written",
) -> None:
    """Refuse null or unrepresentable event times, unrepresentable created times, and (when
    ``skew_us`` is set) event times later than now + ``skew_us``."""
    ev = _ints(event_ts)
    if ev.null_count:
        raise InvalidTimestamp(
            f"{where}: {ev.null_count} row(s) have no event time (null); every row needs one. "
            f"{written}"
        )
    _check_range(ev, f"{where}: event time", written)
    if created_ts is not None:
        _check_range(_ints(created_ts), f"{where}: created time", written)
    if skew_us is None or not len(ev):
        return
    now = time.time_ns() // 1000 if now_us is None else now_us
    limit = now + skew_us
    latest = pc.max(ev).as_py()
    if latest > limit:
        n = pc.sum(pc.greater(ev, limit)).as_py()
        raise InvalidTimestamp(
            f"{where}: {n} row(s) have an event time further in the future than "
            f"online_store.max_future_skew ({_duration(skew_us)}) allows, the latest "
            f"{iso(latest)} (now is {iso(now)}); {fix_future}. {written}"
        )


def check_feature_times(arr: pa.Array, where: str, written: str = "Nothing was written") -> None:
    """Values of a timestamp feature (or list of them) must be representable as well: the
    server renders them (an out-of-range one would only ever be served as INVALID)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pat.is_list(arr.type) or pat.is_large_list(arr.type):
        arr = pc.list_flatten(arr)
    if pat.is_timestamp(arr.type):
        _check_range(
            _ints(arr.cast(pa.timestamp("us", tz=arr.type.tz), safe=False)), where, written
        )


def _check_range(arr: pa.Array, what: str, written: str) -> None:
    if not len(arr) or arr.null_count == len(arr):
        return
    lo, hi = (v.as_py() for v in pc.min_max(arr).values())
    if lo >= MIN_US and hi < END_US:
        return
    bad = pc.or_(pc.less(arr, MIN_US), pc.greater_equal(arr, END_US))
    n = pc.sum(bad).as_py()
    first = arr.filter(bad)[0].as_py()
    raise InvalidTimestamp(
        f"{what} {iso(first)} is outside the range banquet can store and serve ({RANGE_TEXT}); "
        f"{n} row(s) affected. Correct the times. {written}"
    )


def _ints(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.int64() else arr.cast(pa.int64())


def _duration(us: int) -> str:
    s = us / 1_000_000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"


# --- keys and values -------------------------------------------------------------------------


def check_keys(keys: list[pa.Array], names: list[str], where: str) -> None:
    """Refuse null entity keys (they were dropped silently)."""
    for name, arr in zip(names, keys):
        if arr.null_count:
            raise NullKeyError(
                f"{where}: join key column {name!r} is null in {arr.null_count} row(s); every "
                "row needs a key: drop those rows or fill in the key. Nothing was written"
            )


def check_fits(src: pa.Array, out: pa.Array, where: str) -> None:
    """Refuse values that a cast to a narrower float type turned infinite (``1e300`` into
    ``Float32``); integer overflows are refused by the safe cast itself."""
    if pat.is_list(out.type) or pat.is_large_list(out.type):
        if not pat.is_floating(out.type.value_type):
            return
        src, out = pc.list_flatten(src), pc.list_flatten(out)
    elif not pat.is_floating(out.type):
        return
    if not pat.is_floating(src.type) or src.type.bit_width <= out.type.bit_width:
        return
    bad = pc.and_(pc.is_finite(src), pc.is_inf(out))
    if pc.any(bad).as_py():
        value = src.filter(bad)[0].as_py()
        raise ValueOutOfRange(
            f"{where}: value {value!r} does not fit the declared {out.type} (largest "
            f"{float(np.finfo(out.type.to_pandas_dtype()).max):g}); declare the feature as "
            "Float64 or correct the value. Nothing was written"
        )


def out_of_range(e: Exception) -> bool:
    """Whether a failed safe cast failed because a value was out of the target's range."""
    text = str(e)
    return "not in range" in text or "out of bounds" in text or "overflow" in text.lower()


# --- parsing ---------------------------------------------------------------------------------


def parse_iso_strings(arr: pa.Array | pa.ChunkedArray, what: str) -> pa.Array:
    """ISO 8601 strings as ``timestamp[us, UTC]``: naive ones are UTC, ``Z`` and offsets such
    as ``+05:30`` are converted to UTC. The common naive form is parsed in Arrow; anything
    else value by value."""
    try:
        return pc.strptime(arr, format="%Y-%m-%dT%H:%M:%S", unit="us", error_is_null=False).cast(
            UTC_US
        )
    except pa.ArrowInvalid:
        pass
    out: list[int | None] = []
    for v in arr.to_pylist():
        out.append(None if v is None else parse_iso(v, what))
    return pa.array(out, pa.int64()).cast(UTC_US)


def parse_iso(value: str, what: str) -> int:
    """One ISO 8601 string as UTC µs (naive means UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise TimestampColumnError(
            f"{what} holds {value[:40]!r}, which is not an ISO 8601 time such as "
            "'2024-01-31T12:00:00Z' or '2024-01-31T17:30:00+05:30'; fix it or convert the "
            "column to datetimes"
        ) from None
    return to_us(ts)


def to_us(ts: datetime) -> int:
    """UTC microseconds; naive datetimes are UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    # utcoffset, not subtraction of aware datetimes: exact also next to year 1 and 9999
    naive = ts.replace(tzinfo=None) - datetime(1970, 1, 1)
    off = ts.utcoffset()
    us = (naive.days * 86_400 + naive.seconds) * 1_000_000 + naive.microseconds
    if off is not None:
        us -= (off.days * 86_400 + off.seconds) * 1_000_000 + off.microseconds
    return us
