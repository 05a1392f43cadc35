"""Point-in-time correct training sets.

For each feature view in the request: the offline store scans the needed columns of rows in
``[min entity ts - ttl, max entity ts]`` whose keys occur among the entity rows
(``OfflineStore.scan_view``); ``offline.join`` joins them, in memory with the Rust kernel
``asof_join`` + ``take_rows`` while they fit in ``offline_store.memory_limit``, else
partitioned by key and spilled to disk (the output then streams out chunk by chunk). Views
whose source has many rows per entity row are first tried by ``offline.join.join_two_pass``
(keys and times joined first, feature columns decoded for the winning rows only), all such
views at once on threads; of the rest, views with small sources are joined side by side, the
others one at a time. The output keeps every entity column unchanged and first, one row per
entity row in input order, then the features in request order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from banquet import types
from banquet._memory import memory_bound
from banquet.entity_data import flat, key_column, timestamp_column, to_table, utc_us
from banquet.errors import FeatureNameCollisionError, SchemaMismatch
from banquet.offline.base import RetrievalJob
from banquet.offline.join import (
    Budget,
    MemoryResult,
    SpilledResult,
    ViewResult,
    join_two_pass,
    join_view,
)
from banquet.offline.spill import SpillDir, default_memory_limit
from banquet.request import ResolvedRequest, ViewGroup

# A source of at most this many rows is one or two scan units (pyarrow writes 1M-row groups
# by default): views that small are joined side by side to use the cores.
SMALL_VIEW_ROWS = 2 << 20
T = TypeVar("T")

if TYPE_CHECKING:
    from banquet.field import Field
    from banquet.offline.base import OfflineStore


class HistoricalJob(RetrievalJob):
    """The lazy result of ``get_historical_features``; computed once, on first ``to_*``."""

    def __init__(self, store: OfflineStore, request: ResolvedRequest, entity_df: Any) -> None:
        self._store = store
        self._request = request
        with memory_bound("get_historical_features (reading entity_df)"):
            self._entity = to_table(entity_df)
        self._ts_col = timestamp_column(self._entity)
        self._entity = utc_aware_timestamps(self._entity, self._ts_col)
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
            bound = memory_bound(f"get_historical_features ({rows} entity rows)")
            with bound, self._spill_dir() as spill:
                results = self._join_views(spill)
                if all(not isinstance(r, SpilledResult) for r in results):
                    self._result = self._assemble(0, rows, results)
                else:
                    parts = [self._assemble(lo, hi, results) for lo, hi in self._chunks()]
                    self._result = pa.concat_tables(parts)
        return self._result

    def to_arrow_batches(self) -> Iterator[pa.RecordBatch]:
        """The result as record batches in entity row order, computed as they are consumed:
        a join that spilled to disk streams its output without holding it whole (the spill
        files go when the iteration ends, is closed or fails)."""
        if self._result is not None:
            yield from _batches(self._result)
            return
        rows = self._entity.num_rows
        bound = memory_bound(f"get_historical_features ({rows} entity rows)")
        with bound, self._spill_dir() as spill:
            results = self._join_views(spill)
            spilled = any(isinstance(r, SpilledResult) for r in results)
            for lo, hi in self._chunks() if spilled else [(0, rows)]:
                yield from _batches(self._assemble(lo, hi, results))

    def _spill_dir(self) -> SpillDir:
        cfg = self._store.config
        parent = getattr(cfg.offline_store, "spill_dir", None)
        return SpillDir(str(cfg.resolve(parent)) if parent else None)

    def _budget(self) -> Budget:
        limit = getattr(self._store.config.offline_store, "memory_limit_bytes", None)
        return Budget(limit if limit is not None else default_memory_limit())

    def _chunks(self) -> list[tuple[int, int]]:
        """Entity-row ranges of the streamed output: a few MiB of keys each, at least 1024
        rows (or all of them when fewer)."""
        n = self._entity.num_rows
        step = max(1024, min(1 << 20, self._budget().limit // 512))
        return [(lo, min(lo + step, n)) for lo in range(0, n, step)] or [(0, 0)]

    def _join_views(self, spill: SpillDir) -> list[ViewResult | None]:
        """Each non-on-demand group's features (raw source types) for every entity row."""
        entity = self._entity
        ts = utc_us(entity.column(self._ts_col), f"entity_df column {self._ts_col!r}")
        ts = ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
        budget = self._budget()
        budget.used += ts.nbytes
        groups = [g for g in self._request.groups if not g.is_on_demand]
        keys = {
            id(g): [
                flat(
                    key_column(
                        entity, g.view.entity_column(k), _join_dtype(g.view.key_dtype(k)), _where(g)
                    )
                )
                for k in g.view.join_keys
            ]
            for g in groups
        }

        def two_pass(g: ViewGroup) -> MemoryResult | None:
            return join_two_pass(self._store, g.view, g.features, keys[id(g)], ts, budget)

        def one_pass(g: ViewGroup) -> ViewResult:
            return join_view(self._store, g.view, g.features, keys[id(g)], ts, budget, spill)

        done: dict[int, ViewResult] = {}

        def keep(g: ViewGroup, r: ViewResult) -> None:
            done[id(g)] = r
            if isinstance(r, MemoryResult):
                budget.used += r.nbytes

        # Join first, features last, for every view that can: the views at once (the Rust
        # scan releases the GIL; a view of one row group is read by one thread, so two views
        # use two cores).
        for g, fast in zip(groups, _on_threads(two_pass, groups)):
            if fast is not None:
                keep(g, fast)
        # The others, and any whose first pass outgrew the budget, go through the path that
        # can spill, one at a time, except small views: a source of one or two row groups
        # is read by one or two threads, so those are joined side by side (each still spills
        # past half the free budget: together at most all of it).
        small = self._small_views([g for g in groups if id(g) not in done], budget)
        if len(small) > 1:
            for g, r in zip(small, _on_threads(one_pass, small)):
                keep(g, r)
        for g in groups:
            if id(g) not in done:
                keep(g, one_pass(g))
        # on-demand views: computed from the joined inputs, per output chunk
        return [None if g.is_on_demand else done[id(g)] for g in self._request.groups]

    def _small_views(self, groups: list[ViewGroup], budget: Budget) -> list[ViewGroup]:
        """The views among ``groups`` whose Parquet source holds at most ``SMALL_VIEW_ROWS``
        rows (footers only; other stores: none), if their results (~8 bytes per entity row
        and feature) fit in half the free budget: a view joined alongside another does not
        see the other's result in the budget, so it could not spill in its place."""
        from banquet.offline.file import FileOfflineStore

        store = self._store
        if len(groups) < 2 or not isinstance(store, FileOfflineStore):
            return []
        rows = [store.source_rows(g.view.batch_source) for g in groups]
        small = [g for g, n in zip(groups, rows) if n is not None and n <= SMALL_VIEW_ROWS]
        result_bytes = 8 * self._entity.num_rows * sum(len(g.features) for g in small)
        return small if result_bytes <= budget.free() // 2 else []

    def _assemble(self, lo: int, hi: int, results: list[ViewResult | None]) -> pa.Table:
        """Entity rows ``lo..hi`` with their features: the entity columns unchanged, then the
        features in request order (cast to the declared types), on-demand views applied."""
        entity = self._entity
        if lo != 0 or hi != entity.num_rows:
            entity = entity.slice(lo, hi - lo)
        per_group: list[list[pa.Array]] = []
        for g, res in zip(self._request.groups, results):
            if res is None:
                per_group.append([])
                continue
            cols = res.rows(lo, hi)
            per_group.append([_declared(g, f, c) for f, c in zip(g.features, cols)])
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


def _on_threads(fn: Callable[[ViewGroup], T], groups: list[ViewGroup]) -> list[T]:
    """``fn`` of each view, on threads when there are several (the kernels release the GIL)."""
    if len(groups) < 2:
        return [fn(g) for g in groups]
    with ThreadPoolExecutor(min(len(groups), os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, groups))


def _declared(g: ViewGroup, f: Field, taken: pa.Array) -> pa.Array:
    """A joined feature column in its declared type (or ``SchemaMismatch``)."""
    target = f.dtype.to_arrow()
    if taken.type == target or f.dtype.document:  # documents: as the source
        return taken
    try:
        return taken.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        source = g.view.batch_source
        raise SchemaMismatch(
            f"{_where(g)}: source column {source.source_column(f.name)!r} has type "
            f"{taken.type}, which does not convert to the declared {f.dtype}"
        ) from None


def utc_aware_timestamps(entity: pa.Table, name: str) -> pa.Table:
    """The entity timestamp column as Feast returns it: UTC-aware (naive times are read as
    UTC, other zones converted to UTC, the same instants), its unit kept; ISO text and dates
    parsed as the join reads them."""
    i = entity.schema.get_field_index(name)
    col = entity.column(i)
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz == "UTC":
            return entity
        col = col.cast(pa.timestamp(t.unit, tz="UTC"))  # naive values are UTC wall times
    else:
        col = utc_us(col, f"entity_df column {name!r}")
    entity = entity.set_column(i, name, col)
    meta = entity.schema.metadata or {}
    if b"pandas" in meta:  # else to_pandas() puts the input's zone back from it
        doc = json.loads(meta[b"pandas"])
        for c in doc.get("columns", []):
            if c.get("field_name") == name:
                c.update(pandas_type="datetimetz", metadata={"timezone": "UTC"})
        entity = entity.replace_schema_metadata({**meta, b"pandas": json.dumps(doc).encode()})
    return entity


def _batches(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """A table's rows as batches; one empty batch for an empty table (so the schema is
    always seen)."""
    batches = table.to_batches()
    if not batches:
        batches = [pa.RecordBatch.from_pylist([], schema=table.schema)]
    yield from batches


def _join_dtype(dtype: types.BanquetType | None) -> types.BanquetType | None:
    """Integer keys join as int64: an entity key held as ``bigint`` meets a source's
    ``integer`` column, and a value past int32 simply matches nothing (no cast error)."""
    return types.Int64 if dtype is not None and dtype.name == "int32" else dtype


def _where(g: ViewGroup) -> str:
    return f"feature view {g.view.name!r}"
