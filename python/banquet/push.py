"""Writes from outside: ``write_to_online_store`` and ``push``.

Every frame is validated against each target view's schema before anything is written, so a
rejected push writes nothing anywhere.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from banquet import _core
from banquet.entity_data import flat, key_column, to_table, utc_us
from banquet.errors import DataSourceNotFound, SchemaMismatch, ValueOutOfRange
from banquet.materialize import write_rows
from banquet.sources import FileSource, PushSource
from banquet.write_checks import (
    check_feature_times,
    check_fits,
    check_keys,
    check_times,
    max_future_skew_us,
    out_of_range,
)

if TYPE_CHECKING:
    from banquet.feature_view import FeatureView
    from banquet.store import FeatureStore, PushMode


class Prepared:
    """A frame checked and typed for one view: keys, timestamps and features as Arrow."""

    def __init__(self, view: FeatureView, table: pa.Table, skew_us: int | None) -> None:
        source = view.batch_source
        where = f"rows for feature view {view.name!r}"
        ts_name = source.timestamp_field
        # an aggregated view takes the columns it aggregates (source_fields), not its outputs
        needed = [*view.join_keys, ts_name, *(f.name for f in view.source_fields)]
        missing = [c for c in needed if c not in table.column_names]
        if missing:
            raise SchemaMismatch(
                f"{where} lack column(s) {missing}; the frame must hold the join keys, "
                f"'{ts_name}' and every feature ({[f.name for f in view.source_fields]})"
            )
        self.view = view
        self.keys = [flat(key_column(table, k, view.key_dtype(k), where)) for k in view.join_keys]
        check_keys(self.keys, list(view.join_keys), where)
        self.event_ts = flat(utc_us(table.column(ts_name), f"{where}: column {ts_name!r}"))
        created = source.created_timestamp_column
        self.created_ts = (
            flat(utc_us(table.column(created), f"{where}: column {created!r}"))
            if created and created in table.column_names
            else None
        )
        check_times(self.event_ts, self.created_ts, where, skew_us)
        self.features = []
        for f in view.source_fields:
            col = flat(table.column(f.name))
            target = f.dtype.to_arrow()
            if col.type != target and not f.dtype.document:  # documents: encode_rows
                try:
                    if not _castable(col.type, target):  # cast() would parse "1.5" into 1.5
                        raise pa.ArrowInvalid("incompatible")
                    cast = col.cast(target, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
                    if out_of_range(e):
                        raise ValueOutOfRange(
                            f"{where}: column {f.name!r} holds a value out of the range of the "
                            f"declared {f.dtype} ({_one_line(e)}); correct it or declare a "
                            "wider type. Nothing was written"
                        ) from None
                    raise SchemaMismatch(
                        f"{where}: column {f.name!r} has type {col.type}, which does not "
                        f"safely convert to the declared {f.dtype}"
                    ) from None
                check_fits(col, cast, f"{where}: column {f.name!r}")
                col = cast
            check_feature_times(col, f"{where}: column {f.name!r}: time")
            self.features.append(col)

    def write_online(self, store: FeatureStore, overwrite: bool = False) -> None:
        if self.view.is_aggregated:  # every row counts: added to the stored tiles
            from banquet.online.tiles import add_rows

            add_rows(store, self.view, self.keys, self.event_ts, self.created_ts, self.features)
            return
        idx = _core.latest_per_key(self.keys, self.event_ts, self.created_ts, None, None)
        write_rows(
            store,
            self.view,
            [k.take(idx) for k in self.keys],
            self.event_ts.take(idx),
            self.created_ts.take(idx) if self.created_ts is not None else None,
            [c.take(idx) for c in self.features],
            overwrite=overwrite,
        )


def write_online(store: FeatureStore, view: FeatureView, df: Any, overwrite: bool = False) -> None:
    Prepared(view, to_table(df, "df"), max_future_skew_us(store.config)).write_online(
        store, overwrite
    )


def push(
    store: FeatureStore, push_source_name: str, df: Any, to: PushMode, overwrite: bool = False
) -> None:
    from banquet.store import PushMode

    catalog = store.catalog()
    source = catalog.data_sources.get(push_source_name)
    if not isinstance(source, PushSource):
        raise DataSourceNotFound(
            f"no push source named {push_source_name!r} is registered; push sources: "
            f"{sorted(n for n, s in catalog.data_sources.items() if isinstance(s, PushSource))}"
        )
    views = [v for v in catalog.feature_views.values() if v.source.name == push_source_name]
    table = to_table(df, "df")
    skew = max_future_skew_us(store.config)
    prepared = [Prepared(v, table, skew) for v in views]  # validate everything before writing
    if to in (PushMode.OFFLINE, PushMode.ONLINE_AND_OFFLINE):
        # Offline first: if the append fails (the source's files disagree), nothing was
        # written; a retry after a failed online write only repeats identical offline rows.
        store.offline_store.append(source.batch_source, _offline_rows(source, table, prepared))
    if to in (PushMode.ONLINE, PushMode.ONLINE_AND_OFFLINE):
        for p in prepared:
            if p.view.online:
                p.write_online(store, overwrite)


def _offline_rows(source: PushSource, table: pa.Table, prepared: list[Prepared]) -> pa.Table:
    """The pushed rows as the batch source stores them: source column names, typed."""
    batch = source.batch_source
    reverse = {v: k for k, v in batch.field_mapping.items()}
    cols: dict[str, pa.Array] = {}
    for p in prepared:
        for k, arr in zip(p.view.join_keys, p.keys):
            cols[reverse.get(k, k)] = arr
        cols[batch.timestamp_field] = p.event_ts
        if p.created_ts is not None:
            cols[batch.created_timestamp_column] = p.created_ts
        for f, arr in zip(p.view.source_fields, p.features):
            cols[reverse.get(f.name, f.name)] = arr
    if not prepared:
        return table
    created = batch.created_timestamp_column
    if created and created not in cols:  # the source has the column: store nulls in it
        cols[created] = pa.nulls(table.num_rows, pa.timestamp("us", tz="UTC"))
    used = {batch.timestamp_field, created} | {n for p in prepared for n in p.view.join_keys}
    used |= {f.name for p in prepared for f in p.view.source_fields}
    for name in table.column_names:  # other columns the frame holds (the source may have them)
        if name not in used and name not in cols:
            cols[name] = table.column(name)
    return pa.table(cols)


def _castable(src: pa.DataType, target: pa.DataType) -> bool:
    """Whether a pushed column of type ``src`` may be stored as ``target``: numbers as numbers
    (the cast still refuses lossy values), text as text, bytes as bytes, times as times, lists
    of castable items; never a conversion between kinds (strings parsed as floats ...)."""
    import pyarrow.types as pat

    if pat.is_dictionary(src):
        src = src.value_type
    if src == target or pat.is_null(src):
        return True
    if pat.is_list(target):
        return (
            pat.is_list(src) or pat.is_large_list(src) or pat.is_fixed_size_list(src)
        ) and _castable(src.value_type, target.value_type)
    kinds = (
        lambda t: pat.is_integer(t) or pat.is_floating(t),
        lambda t: pat.is_string(t) or pat.is_large_string(t) or str(t) == "string_view",
        lambda t: (
            pat.is_binary(t)
            or pat.is_large_binary(t)
            or pat.is_fixed_size_binary(t)
            or str(t) == "binary_view"
        ),
        pat.is_boolean,
        lambda t: pat.is_timestamp(t) or pat.is_date(t),
    )
    return any(kind(src) and kind(target) for kind in kinds)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:200]


def new_part_name() -> str:
    return f"part-{os.getpid()}-{uuid.uuid4().hex[:12]}.parquet"


__all__ = ["FileSource", "push", "write_online"]
