"""Online aggregation tiles (ARCHITECTURE.md, "Online aggregation tiles").

An aggregated view keeps, per entity key, one blob in its ordinary online storage (the same
``OnlineStore.write`` / ``read`` as plain views, so every store has tiles without a line of
store code): the key's tiles of ``slide_interval`` per aggregation, partial aggregates
encoded by ``_core.tiles_build`` (Rust, ``rust/core/src/tiles``). The stored row's event
time is the newest event the tiles hold, so the view's ttl works as for plain features.

* Materialization recomputes whole tiles from the offline rows (it reads from the start of
  the first tile it touches) and replaces them: idempotent.
* Pushes, ``write_to_online_store`` and stream ingestion add their rows to the stored tiles
  (read, merge in Rust, write back with ``overwrite``): at-least-once (a row written twice
  counts twice; a later materialization of its interval repairs it), and two writers of
  the same key at the same instant can lose one's rows (last write wins).
* A read merges the tiles covering ``(floor(now, s) - w, floor(now, s)]`` in Rust, inside
  ``_core.OnlinePlan`` (the SQLite one-call path included), which gets the views' specs.

Views with an aggregation without ``slide_interval`` cannot be online (refused at apply):
an exact sliding window would need every event of the window per key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from banquet import _core
from banquet.errors import DefinitionError, SchemaMismatch
from banquet.online.base import rows_batch

if TYPE_CHECKING:
    from banquet.feature_view import FeatureView
    from banquet.store import FeatureStore

Spec = tuple[str, str, int, int]  # (function, kind, window_us, slide_us)


def check_online_views(views: Iterable[FeatureView]) -> None:
    """Apply's check: an online aggregated view needs a ``slide_interval`` everywhere."""
    for v in views:
        if not v.online or not getattr(v, "aggregations", None):
            continue
        exact = [a.feature_name for a in v.aggregations if a.slide_interval is None]
        if exact:
            raise DefinitionError(
                f"feature view {v.name!r}: aggregations {exact} have no slide_interval, so "
                "they slide exactly and cannot be served online (the online store keeps "
                "tiles of slide_interval per key); set slide_interval=timedelta(...) on "
                "each (it must divide time_window), or online=False to use them offline only"
            )
        for a in v.aggregations:
            _kind(v, a.column)


def _kind(view: FeatureView, column: str) -> str:
    dtype = next(f.dtype for f in view.source_fields if f.name == column)
    t = dtype.to_arrow()
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_timestamp(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        return "bytes"
    raise DefinitionError(
        f"feature view {view.name!r}: column {column!r} of type {dtype} cannot be aggregated "
        "online (tiles hold integers, floats, timestamps, booleans, strings and bytes)"
    )


def specs(view: FeatureView) -> list[Spec]:
    out = []
    for a in view.aggregations:
        assert a.slide_us is not None  # check_online_views
        out.append((a.function, _kind(view, a.column), a.window_us, a.slide_us))
    return out


def _as_kind(col: pa.Array, kind: str) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if kind == "int":
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
        return col.cast(pa.int64())
    if kind == "float":
        return col.cast(pa.float64())
    return col.cast(pa.binary())


def _values(view: FeatureView, columns: dict[str, pa.Array]) -> list[pa.Array]:
    kinds = specs(view)
    return [_as_kind(columns[a.column], k[1]) for a, k in zip(view.aggregations, kinds)]


def build(
    view: FeatureView,
    keys: list[pa.Array],
    event_ts: pa.Array,
    created_ts: pa.Array | None,
    columns: dict[str, pa.Array],
) -> tuple[list[bytes], list[bytes]]:
    """Rows (typed join keys, UTC µs times, source columns by name) -> (serialized keys,
    one tile blob per key)."""
    key_bytes = _core.serialize_entity_keys(view.join_keys, keys)
    ts = event_ts.cast(pa.int64()) if event_ts.type != pa.int64() else event_ts
    created = None
    if created_ts is not None:
        created = created_ts.cast(pa.int64()) if created_ts.type != pa.int64() else created_ts
    out: tuple[list[bytes], list[bytes]] = _core.tiles_build(
        key_bytes, ts, created, _values(view, columns), specs(view)
    )
    return out


def write(
    store: FeatureStore,
    view: FeatureView,
    keys: list[bytes],
    blobs: list[bytes],
    replace: tuple[int, int] | None,
) -> None:
    """Merge ``blobs`` into the stored tiles of ``keys`` and write them back (``replace``:
    the ``(lo, hi]`` a materialization recomputed; None: add, as pushes do)."""
    if not keys:
        return
    online = store.online_store
    online.ensure_view(store.project, view)
    name = view.storage_name
    for lo in range(0, len(keys), 10_000):
        part = keys[lo : lo + 10_000]
        old = online.read(store.project, [(name, part)])[0]
        stamps, merged = _core.tiles_merge(old, blobs[lo : lo + 10_000], specs(view), replace)
        online.write(store.project, name, rows_batch(part, stamps, None, merged), overwrite=True)


def add_rows(
    store: FeatureStore,
    view: FeatureView,
    keys: list[pa.Array],
    event_ts: pa.Array,
    created_ts: pa.Array | None,
    features: Sequence[pa.Array],
) -> None:
    """Pushed / ingested rows (``features`` in ``view.source_fields`` order) added to the
    stored tiles."""
    columns = {f.name: c for f, c in zip(view.source_fields, features)}
    key_bytes, blobs = build(view, keys, event_ts, created_ts, columns)
    write(store, view, key_bytes, blobs, None)


def materialize(store: FeatureStore, view: FeatureView, start_us: int | None, end_us: int) -> None:
    """Recompute the tiles holding rows in ``[start, end]`` from the offline rows of whole
    tiles (from the start of the first tile touched) and replace them."""
    from banquet.offline.base import view_rows

    slides = [s for _, _, _, s in specs(view)]
    if start_us is None:
        lo = None
        after = -(2**62)
    else:
        # the first tile holding `start` begins after floor(start - 1, s): read from there
        after = min((start_us - 1) - (start_us - 1) % s for s in slides)
        lo = after + 1
    reader = store.offline_store.scan_view(view, view.source_fields, lo, end_us)
    try:
        table = reader.read_all()
    finally:
        reader.close()
    rows = view_rows(view, table)
    columns = {f.name: table.column(f.name) for f in view.source_fields}
    key_bytes, blobs = build(view, rows.keys, rows.event_ts, rows.created_ts, columns)
    write(store, view, key_bytes, blobs, (after, end_us))


def read_at(
    store: FeatureStore, view: FeatureView, key_bytes: list[bytes], at_us: int
) -> tuple[list[int | None], list[list[Any]]]:
    """Per key: the newest event time of its tiles (None: no row) and, per aggregate
    feature, its value at ``at_us`` (audit and tests read at a chosen instant)."""
    blobs = store.online_store.read(store.project, [(view.storage_name, key_bytes)])[0]
    stamps, columns = _core.tiles_read(blobs, specs(view), at_us)
    return stamps, [_typed(f, c).to_pylist() for f, c in zip(view.features, columns)]


def _typed(field: Any, col: pa.Array) -> pa.Array:
    target = field.dtype.to_arrow()
    if col.type == target:
        return col
    if pa.types.is_timestamp(target):
        return (
            col.cast(pa.timestamp("us", tz=target.tz))
            if col.type != pa.int64()
            else (col.cast(pa.timestamp("us")).cast(target))
        )
    if pa.types.is_string(target):
        return col.cast(pa.string())
    if pa.types.is_boolean(target):
        return pc.not_equal(col, 0)
    try:
        return col.cast(target)
    except pa.ArrowInvalid:
        raise SchemaMismatch(
            f"aggregate feature {field.name!r}: a value does not fit {field.dtype}"
        ) from None
