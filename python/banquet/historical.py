"""Point-in-time correct training sets.

For each feature view in the request: the offline store reads the needed columns of rows in
``[min entity ts - ttl, max entity ts]``; the Rust kernel ``asof_join`` finds, for every
entity row, the matching feature row; ``take`` gathers the features. The output keeps every
entity column unchanged and first, one row per entity row in input order, then the features
in request order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from banquet import _core, types
from banquet._memory import memory_bound
from banquet.entity_data import flat, key_column, timestamp_column, to_table, utc_us
from banquet.errors import FeatureNameCollisionError, SchemaMismatch
from banquet.offline.base import RetrievalJob
from banquet.request import ResolvedRequest, ViewGroup

if TYPE_CHECKING:
    from banquet.offline.base import OfflineStore


class HistoricalJob(RetrievalJob):
    """The lazy result of ``get_historical_features``; computed once, on first ``to_*``."""

    def __init__(self, store: OfflineStore, request: ResolvedRequest, entity_df: Any) -> None:
        self._store = store
        self._request = request
        with memory_bound("get_historical_features (reading entity_df)"):
            self._entity = to_table(entity_df)
        self._ts_col = timestamp_column(self._entity)
        clash = sorted(set(request.names) & set(self._entity.column_names))
        if clash:
            raise FeatureNameCollisionError(
                f"entity_df already has columns named {clash}, like requested features; "
                "rename them or pass full_feature_names=True"
            )
        for g in request.groups:  # fail fast on a missing key, before any I/O
            if not g.is_on_demand:
                for k in g.view.join_keys:
                    key_column(self._entity, g.view.entity_column(k), None, _where(g))
        if any(g.is_on_demand for g in request.groups):
            from banquet.on_demand import check_request_fields

            check_request_fields(
                request, self._entity.column_names, "entity_df", "add them as columns"
            )
        self._result: pa.Table | None = None

    def to_arrow(self) -> pa.Table:
        if self._result is None:
            rows = self._entity.num_rows
            with memory_bound(f"get_historical_features ({rows} entity rows)"):
                self._result = self._run()
        return self._result

    def _run(self) -> pa.Table:
        entity = self._entity
        ts = utc_us(entity.column(self._ts_col), f"entity_df column {self._ts_col!r}")
        ts = ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
        per_group: list[list[pa.Array]] = []
        for g in self._request.groups:
            if g.is_on_demand:
                per_group.append([])  # filled below, once the inputs exist
            else:
                per_group.append(self._join_view(g, entity, ts))
        columns = [per_group[gi][fi] for gi, fi in self._request.columns if per_group[gi]]
        names = [
            n for (gi, _), n in zip(self._request.columns, self._request.names) if per_group[gi]
        ]
        out = entity
        for name, col in zip(names, columns):
            out = out.append_column(name, col)
        if any(g.is_on_demand for g in self._request.groups):
            from banquet.on_demand import apply_historical

            out = apply_historical(out, self._request, per_group)
        return out

    def _join_view(self, g: ViewGroup, entity: pa.Table, ts: pa.Array) -> list[pa.Array]:
        view = g.view
        source = view.batch_source
        where = _where(g)
        keys = view.join_keys
        entity_keys = [
            flat(key_column(entity, view.entity_column(k), _join_dtype(view.key_dtype(k)), where))
            for k in keys
        ]
        ttl = view.ttl_us
        if len(ts) and ts.null_count < len(ts):
            lo_hi = pc.min_max(ts)
            hi = lo_hi["max"].value
            lo = None if ttl is None else lo_hi["min"].value - ttl
        else:
            lo = hi = 0  # nothing can match: read an empty range
        rows = self._store.read_view(view, g.features, lo, hi)
        table = rows.table
        pairs = [_as_int64_if_widths_differ(ek, rk) for ek, rk in zip(entity_keys, rows.keys)]
        idx = _core.asof_join(
            [e for e, _ in pairs], ts, [r for _, r in pairs], rows.event_ts, rows.created_ts, ttl
        )
        out = []
        for f in g.features:
            values = flat(table.column(f.name))  # take on one chunk is ~2x faster than on many
            target = f.dtype.to_arrow()
            taken = values.take(idx)
            if taken.type != target and not f.dtype.document:  # documents: as the source
                try:
                    taken = taken.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise SchemaMismatch(
                        f"{where}: source column {source.source_column(f.name)!r} has type "
                        f"{values.type}, which does not convert to the declared {f.dtype}"
                    ) from None
            out.append(taken)
        return out


def _join_dtype(dtype: types.BanquetType | None) -> types.BanquetType | None:
    """Integer keys join as int64: an entity key held as ``bigint`` meets a source's
    ``integer`` column, and a value past int32 simply matches nothing (no cast error)."""
    return types.Int64 if dtype is not None and dtype.name == "int32" else dtype


def _as_int64_if_widths_differ(a: pa.Array, b: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Integer keys of different widths (``integer`` vs ``bigint``) both joined as int64."""
    if a.type != b.type and pa.types.is_integer(a.type) and pa.types.is_integer(b.type):
        return a.cast(pa.int64()), b.cast(pa.int64())
    return a, b


def _where(g: ViewGroup) -> str:
    return f"feature view {g.view.name!r}"
