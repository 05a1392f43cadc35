"""Message values -> one Arrow table per micro-batch.

JSON: the values are joined into newline-delimited JSON and parsed by ``pyarrow.json`` in
one call (C++; no Python per row); the view's keys and features are read with their declared
types (a value of another type fails the parse, and ``batch.py`` then isolates the message).
A raw newline inside a JSON message can only be whitespace (JSON escapes it inside strings),
so it is replaced by a space first: pretty-printed messages stay one line each.
Avro: plain binary records read by fastavro with the source's writer schema (one Python
call per message: Avro has no columnar batch reader), then columns built by pyarrow.

The event time (and created time) becomes ``timestamp[us, UTC]`` here: ISO 8601 strings
(offsets converted, naive = UTC) or numbers of seconds since the Unix epoch.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from banquet.entity_data import utc_us
from banquet.errors import SchemaMismatch, TimestampColumnError

if TYPE_CHECKING:
    from banquet.stream.view import StreamFeatureView

UTC_US = pa.timestamp("us", tz="UTC")


class Decoder:
    """Decodes the values of one view's messages; ``decode(values)`` raises on any bad one
    (the caller bisects to find which)."""

    def __init__(self, view: StreamFeatureView) -> None:
        from banquet.stream.source import AvroFormat

        self.view = view
        src = view.stream_source
        self.ts_name = src.timestamp_field
        self.created_name = src.created_timestamp_column
        # message field -> declared type, for the keys and source columns the message carries
        # (an aggregated view's features are its aggregates, not message fields)
        fields = [*view.entity_columns, *view.source_fields]
        self.schema = pa.schema(
            [pa.field(src.source_column(f.name), f.dtype.to_arrow()) for f in fields]
        )
        self.keep_other_fields = view.stream_udf is not None  # the udf may read any message field
        times = [n for n in (self.ts_name, self.created_name) if n and n not in self.schema.names]
        self.schema_numeric_times = pa.schema(
            [*self.schema, *(pa.field(n, pa.float64()) for n in times)]
        )
        self._numeric_times = True
        self.avro_schema: Any = None
        if isinstance(src.message_format, AvroFormat):
            import fastavro

            self.avro_schema = fastavro.parse_schema(json.loads(src.message_format.schema_json))

    def decode(self, values: list[bytes]) -> pa.Table:
        try:
            table = self._avro(values) if self.avro_schema is not None else self._json(values)
        except pa.ArrowException as e:  # not JSON, or a field of another type than declared
            what = "Avro record" if self.avro_schema is not None else "JSON object"
            raise SchemaMismatch(
                f"not a {what} with the view's field types ({' '.join(str(e).split())[:300]})"
            ) from None
        return self._times(table)

    # --- formats --------------------------------------------------------------------------

    def _json(self, values: list[bytes]) -> pa.Table:
        import pyarrow.json as pj

        if any(not v for v in values):
            raise SchemaMismatch("empty message (no JSON object)")
        data = b"\n".join(values)
        if data.count(b"\n") != len(values) - 1 or b"\r" in data:  # a multi-line message
            data = b"\n".join(v.replace(b"\n", b" ").replace(b"\r", b" ") for v in values)
        read = pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1))
        # Two ways to read: the time fields declared as numbers (seconds; the other fields
        # ignored unless a udf reads them: ~1.5x faster), or inferred (ISO text). The one
        # that worked last goes first.
        for attempt, numeric in enumerate((self._numeric_times, not self._numeric_times)):
            schema = self.schema_numeric_times if numeric else self.schema
            parse = pj.ParseOptions(
                explicit_schema=schema,
                unexpected_field_behavior=(
                    "infer" if self.keep_other_fields or not numeric else "ignore"
                ),
            )
            try:
                table = pj.read_json(io.BytesIO(data), read_options=read, parse_options=parse)
            except pa.ArrowInvalid:
                if attempt:
                    raise
                continue
            self._numeric_times = numeric
            break
        if table.num_rows != len(values):
            raise SchemaMismatch(
                f"{len(values)} message(s) held {table.num_rows} JSON objects; each message "
                "must hold exactly one JSON object"
            )
        return table

    def _avro(self, values: list[bytes]) -> pa.Table:
        import fastavro

        records = []
        for v in values:
            buf = io.BytesIO(v)
            try:
                rec = fastavro.schemaless_reader(buf, self.avro_schema, None)
            except Exception as e:
                raise SchemaMismatch(f"not an Avro record of the source's schema: {e}") from None
            if buf.tell() != len(v):
                raise SchemaMismatch(
                    f"Avro record has {len(v) - buf.tell()} bytes after its end (another schema?)"
                )
            if not isinstance(rec, dict):
                raise SchemaMismatch("the Avro schema does not describe a record")
            records.append(rec)
        names = list(dict.fromkeys(k for r in records for k in r))
        wanted = {f.name: f.type for f in self.schema}
        cols = {}
        for name in names:
            if (
                name not in wanted
                and not self.keep_other_fields
                and name
                not in (
                    self.ts_name,
                    self.created_name,
                )
            ):
                continue
            vals = [r.get(name) for r in records]
            cols[name] = pa.array(vals, type=wanted.get(name))
        for name, typ in wanted.items():  # a field the schema lacks: nulls (caught later)
            if name not in cols:
                cols[name] = pa.nulls(len(records), typ)
        return pa.table(cols)

    # --- times ----------------------------------------------------------------------------

    def _times(self, table: pa.Table) -> pa.Table:
        for name in (self.ts_name, self.created_name):
            if not name:
                continue
            if name not in table.column_names:
                if name == self.ts_name:
                    raise TimestampColumnError(f"message has no event time field {name!r}")
                continue
            i = table.column_names.index(name)
            table = table.set_column(i, name, to_utc_us(table.column(name), name))
        return table


def to_utc_us(col: pa.ChunkedArray, name: str) -> pa.Array:
    """A message time field as ``timestamp[us, UTC]``: numbers are seconds since the epoch."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    t = arr.type
    if pat.is_null(t):
        return pa.nulls(len(arr), UTC_US)
    if pat.is_integer(t) or pat.is_floating(t):
        seconds = arr.cast(pa.float64())
        if pc.any(pc.greater_equal(pc.abs(seconds), 9.2e12)).as_py():
            raise TimestampColumnError(
                f"field {name!r} holds a number of seconds too large for a time; send seconds "
                "since the Unix epoch (not ms or µs) or an ISO 8601 string"
            )
        us = pc.round(pc.multiply(seconds, 1_000_000.0)).cast(pa.int64())
        return us.cast(UTC_US)
    out = utc_us(arr, f"field {name!r}")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
