"""One micro-batch of messages -> checked rows for a single online write, bad ones set aside.

Each message goes through the same steps as a push: decode (``decode.py``), the source's
``field_mapping``, the view's ``udf``, then the push path's checks (``push.Prepared`` over
``write_checks``: keys present and typed, event time present, in range and not too far in
the future, values that fit their type). A batch is tried whole; if any step refuses it, it
is split in halves and each half tried again, down to the single messages that fail: those
are returned with the reason (for the dead-letter topic), the rest are written together. A
clean batch costs one pass; ``k`` bad messages cost about ``k * log2(batch)`` smaller passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from banquet import _core
from banquet.errors import OnDemandFunctionError, SchemaMismatch
from banquet.materialize import write_rows
from banquet.push import Prepared
from banquet.stream.decode import Decoder

if TYPE_CHECKING:
    from banquet.store import FeatureStore
    from banquet.stream.view import StreamFeatureView

UTC_US = pa.timestamp("us", tz="UTC")


@dataclass
class Rejected:
    index: int  # position in the micro-batch
    reason: str  # one line, for the dead-letter header and the log
    kind: str  # the error's class name (a metric label)


@dataclass
class Checked:
    """The good rows of a micro-batch, typed for the view (keys, times, features)."""

    keys: list[pa.Array] = field(default_factory=list)
    event_ts: pa.Array | None = None
    created_ts: pa.Array | None = None
    features: list[pa.Array] = field(default_factory=list)
    rows: int = 0
    offline_done: bool = False  # appended to the batch source (a write retry skips it)


class BatchProcessor:
    """Turns message values into ``Checked`` rows for one view (``run``) and writes them."""

    def __init__(self, store: FeatureStore, view: StreamFeatureView, skew_us: int | None) -> None:
        self.store = store
        self.view = view
        self.skew_us = skew_us
        self.decoder = Decoder(view)
        src = view.stream_source
        batch = view.batch_source
        # message names -> the names Prepared reads: features and keys by field_mapping, the
        # event / created time under the batch source's column names
        self.renames = dict(src.field_mapping)
        self.renames[src.timestamp_field] = batch.timestamp_field
        if src.created_timestamp_column and batch.created_timestamp_column:
            self.renames[src.created_timestamp_column] = batch.created_timestamp_column
        self.fn = view.stream_udf.build() if view.stream_udf is not None else None

    # --- checking ---------------------------------------------------------------------------

    def run(self, values: list[bytes]) -> tuple[Checked, list[Rejected]]:
        pieces: list[Prepared] = []
        rejected: list[Rejected] = []
        self._split(values, 0, pieces, rejected)
        return _merge(self.view, pieces), rejected

    def _split(
        self, values: list[bytes], offset: int, pieces: list[Prepared], rejected: list[Rejected]
    ) -> None:
        if not values:
            return
        try:
            pieces.append(self._prepare(values))
            return
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as e:  # a data error of one (or more) of these messages
            if len(values) == 1:
                rejected.append(Rejected(offset, _one_line(e), type(e).__name__))
                return
        mid = len(values) // 2
        self._split(values[:mid], offset, pieces, rejected)
        self._split(values[mid:], offset + mid, pieces, rejected)

    def _prepare(self, values: list[bytes]) -> Prepared:
        table = self.decoder.decode(values)
        table = table.rename_columns([self.renames.get(n, n) for n in table.column_names])
        if self.fn is not None:
            table = self._transform(table, len(values))
        return Prepared(self.view, table, self.skew_us)

    def _transform(self, table: pa.Table, n: int) -> pa.Table:
        mode = self.view.mode
        assert self.fn is not None
        try:
            if mode == "pandas":
                out: Any = self.fn(table.to_pandas())
            elif mode == "pyarrow":
                out = self.fn(table)
            else:
                out = self.fn(table.to_pydict())
        except Exception as e:
            raise OnDemandFunctionError(
                f"stream feature view {self.view.name!r}: its udf raised {type(e).__name__}: {e}"
            ) from e
        from banquet.entity_data import to_table

        result = to_table(out, f"the udf of stream feature view {self.view.name!r}")
        if result.num_rows != n:
            raise SchemaMismatch(
                f"stream feature view {self.view.name!r}: its udf returned {result.num_rows} "
                f"rows for {n} messages; return one row per message (filtering is not supported)"
            )
        ts = self.view.batch_source.timestamp_field
        if ts in result.column_names and not pa.types.is_timestamp(result.column(ts).type):
            from banquet.stream.decode import to_utc_us

            result = result.set_column(
                result.column_names.index(ts), ts, to_utc_us(result.column(ts), ts)
            )
        return result

    # --- writing ----------------------------------------------------------------------------

    def write_online(self, rows: Checked) -> None:
        """One write of the latest row per key (the store keeps the newer event of each key)."""
        if not rows.rows:
            return
        assert rows.event_ts is not None
        if self.view.is_aggregated:  # every row counts: added to the stored tiles
            from banquet.online.tiles import add_rows

            add_rows(
                self.store, self.view, rows.keys, rows.event_ts, rows.created_ts, rows.features
            )
            return
        idx = _core.latest_per_key(rows.keys, rows.event_ts, rows.created_ts, None, None)
        write_rows(
            self.store,
            self.view,
            [k.take(idx) for k in rows.keys],
            rows.event_ts.take(idx),
            rows.created_ts.take(idx) if rows.created_ts is not None else None,
            [c.take(idx) for c in rows.features],
        )

    def offline_rows(self, rows: Checked) -> pa.Table:
        """The rows as the batch source stores them (its column names, the declared types)."""
        batch = self.view.batch_source
        reverse = {v: k for k, v in batch.field_mapping.items()}
        cols: dict[str, pa.Array] = {}
        for k, arr in zip(self.view.join_keys, rows.keys):
            cols[reverse.get(k, k)] = arr
        assert rows.event_ts is not None
        cols[batch.timestamp_field] = rows.event_ts
        if batch.created_timestamp_column:
            cols[batch.created_timestamp_column] = (
                rows.created_ts if rows.created_ts is not None else pa.nulls(rows.rows, UTC_US)
            )
        for f, arr in zip(self.view.source_fields, rows.features):
            cols[reverse.get(f.name, f.name)] = arr
        return pa.table(cols)


def delays_seconds(rows: Checked, now: float | None = None) -> Any:
    """now - event time of each written row, in seconds (a numpy array)."""
    import numpy as np

    if rows.event_ts is None or not rows.rows:
        return np.empty(0)
    now_us = int((time.time() if now is None else now) * 1_000_000)
    ev = rows.event_ts.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return (now_us - ev) / 1_000_000.0


def _merge(view: StreamFeatureView, pieces: list[Prepared]) -> Checked:
    if not pieces:
        return Checked()
    if len(pieces) == 1:
        p = pieces[0]
        return Checked(p.keys, p.event_ts, p.created_ts, p.features, len(p.event_ts))

    def cat(arrays: list[pa.Array]) -> pa.Array:
        return pa.concat_arrays(arrays)

    created: pa.Array | None = None
    if any(p.created_ts is not None for p in pieces):
        created = cat(
            [
                p.created_ts if p.created_ts is not None else pa.nulls(len(p.event_ts), UTC_US)
                for p in pieces
            ]
        )
    return Checked(
        keys=[cat([p.keys[i] for p in pieces]) for i in range(len(view.join_keys))],
        event_ts=cat([p.event_ts for p in pieces]),
        created_ts=created,
        features=[cat([p.features[i] for p in pieces]) for i in range(len(view.source_fields))],
        rows=sum(len(p.event_ts) for p in pieces),
    )


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()).removesuffix(" Nothing was written")  # (push's wording)
    return text[:500] or type(e).__name__
