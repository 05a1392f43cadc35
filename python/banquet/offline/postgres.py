"""The Postgres offline store: ``PostgreSQLSource`` tables and queries read into Arrow.

Reads go through the ADBC Postgres driver, which runs ``COPY (SELECT ...) TO STDOUT`` in
binary and decodes it into Arrow in C++: no Python object per row. Only the needed columns
of rows inside ``[start, end]`` are read (the bounds are pushed into the ``WHERE``); the
point-in-time join then runs in the same Rust kernel as for Parquet, so both stores share one
set of rules (benches/README.md, "Where the join runs", measures why not in SQL: the pull
was 2-3x faster than LATERAL or DISTINCT ON joins at 1M entity x 10M feature rows).

Every session sets ``TimeZone=UTC`` (a ``timestamp`` without time zone is read as UTC, as
naive timestamps are everywhere else), ``search_path`` to ``db_schema`` then ``public`` (so
``table=`` names and queries resolve in ``db_schema``), and turns off synchronized and
parallel scans, so rows arrive in the same order on every read: the last of fully tied rows
wins, as in the file store.

An offline push stages the rows in a temporary table (binary COPY) and appends them to the
source table with one ``INSERT ... SELECT``, which also converts types (``bigint`` keys into an
``integer`` column, ``timestamptz`` into ``timestamp``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from banquet.errors import (
    BanquetError,
    DataSourceError,
    EntityDataError,
    SchemaMismatch,
    SourceColumnMissing,
    StoreError,
    StoreUnavailable,
)
from banquet.offline.base import OfflineStore
from banquet.redact import redact_text
from banquet.sources import PostgreSQLSource

if TYPE_CHECKING:
    import pyarrow as pa
    from adbc_driver_manager.dbapi import Connection, Cursor

    from banquet.config import PostgresOfflineConfig, RepoConfig
    from banquet.sources import DataSource

T = TypeVar("T")

_INHERITED: list[Any] = []  # connections a forked child got from its parent, never touched
_TRANSIENT = ("could not connect", "connection refused", "server closed", "timeout expired")


class PostgresOfflineStore(OfflineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        cfg: PostgresOfflineConfig = config.offline_store  # type: ignore[assignment]
        self.cfg = cfg
        self.address = redact_text(f"{cfg.host}:{cfg.port}/{cfg.database}", cfg.password)
        self._conn: Connection | None = None
        self._conn_pid = 0
        self._finalizer: weakref.finalize[[Connection], PostgresOfflineStore] | None = None
        self._lock = threading.RLock()

    # --- connections -----------------------------------------------------------------------

    def conninfo(self) -> str:
        """libpq connection string with the session settings described in the module doc."""
        c = self.cfg
        path = ",".join(_quote_ident(s) for s in dict.fromkeys([c.db_schema, "public"]) if s)
        settings = {
            "search_path": path,
            "TimeZone": "UTC",
            "synchronize_seqscans": "off",
            "max_parallel_workers_per_gather": "0",
        }
        # libpq splits options at spaces; a backslash keeps one inside a value
        options = " ".join(
            f"-c {k}=" + v.replace("\\", "\\\\").replace(" ", "\\ ") for k, v in settings.items()
        )
        return c.conninfo("banquet-offline", options=options)

    def _open(self) -> Connection:
        try:
            import adbc_driver_postgresql.dbapi as adbc
        except ImportError:
            raise StoreError(
                "the Postgres offline store needs the ADBC Postgres driver: "
                "pip install 'banquet[postgres]' (or adbc-driver-postgresql)"
            ) from None
        try:
            conn: Connection = adbc.connect(self.conninfo(), autocommit=True)
            return conn
        except Exception as e:  # adbc raises its own DB-API classes
            text = redact_text(_one_line(e), self.cfg.password)
            error: StoreError
            if "FATAL" in text and not any(m in text.lower() for m in _TRANSIENT):
                error = StoreError(
                    f"Postgres offline store at {self.address}: cannot connect: {text}"
                )
            else:
                error = StoreUnavailable(
                    f"Postgres offline store at {self.address} is unavailable: {text}"
                )
        # raised outside the handler: the driver's error (it may quote the connection
        # settings) must not ride along as __context__
        raise error

    def _connection(self) -> Connection:
        """The store's one connection, opened on first use: opening one costs ~150 ms (the
        driver loads the server's type catalog), far more than a small read."""
        if self._conn is not None and self._conn_pid != os.getpid():
            # A forked child must not use the parent's socket, nor close it: closing sends the
            # server a goodbye on the parent's session. Keep the object alive, unused.
            if self._finalizer is not None:
                self._finalizer.detach()
            _INHERITED.append(self._conn)
            self._conn, self._finalizer = None, None
        if self._conn is None:
            conn = self._open()
            self._conn, self._conn_pid = conn, os.getpid()
            self._finalizer = weakref.finalize(self, _close_quietly, conn)
        return self._conn

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if conn is not None:
            _close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._reset()

    def run(self, what: str, op: Callable[[Cursor], T], *, retry: bool = True) -> T:
        """``op(cursor)`` on the store's connection, one caller at a time. A lost connection
        is reopened and ``op`` run once more when ``retry`` (reads are idempotent); any other
        failure is a DataSourceError naming ``what`` with the server's message."""
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    with conn.cursor() as cur:
                        return op(cur)
                except BanquetError:
                    raise
                except Exception as e:
                    text = _one_line(e)
                    lost = _is_connection_lost(conn, text)
                    if lost:
                        self._reset()
                        if retry and attempt == 1:
                            continue
                        raise StoreUnavailable(
                            f"Postgres offline store at {self.address}: connection lost during "
                            f"{what}: {text}"
                        ) from None
                    raise DataSourceError(f"{what}: Postgres rejected the query: {text}") from None
        raise AssertionError("unreachable")

    def _fetch(self, sql: str, what: str) -> pa.Table:
        def op(cur: Cursor) -> pa.Table:
            cur.execute(sql)
            return cur.fetch_arrow_table()

        return _plain(self.run(what, op))

    # --- OfflineStore ----------------------------------------------------------------------

    def _relation(self, source: DataSource) -> str:
        if not isinstance(source, PostgreSQLSource):
            raise DataSourceError(
                f"source {source.name!r} is a {type(source).__name__}, which the Postgres "
                "offline store cannot read; use PostgreSQLSource or offline_store type 'file'"
            )
        if source.table:
            return source.table
        return f"({source.query.strip().rstrip(';')})"

    def source_schema(self, source: DataSource) -> pa.Schema | None:
        rel = self._relation(source.batch)
        return self._fetch(f"SELECT * FROM {rel} AS _src LIMIT 0", _src(source.batch)).schema

    def read(
        self,
        source: DataSource,
        columns: list[str],
        start_us: int | None,
        end_us: int | None,
    ) -> pa.Table:
        rel = self._relation(source)
        ts = _quote_ident(source.timestamp_field)
        where = [
            f"{ts} {op} {_ts_literal(bound)}"
            for bound, op in ((start_us, ">="), (end_us, "<="))
            if bound is not None
        ]
        cols = ", ".join(_quote_ident(c) for c in columns)
        sql = f"SELECT {cols} FROM {rel} AS _src" + (
            f" WHERE {' AND '.join(where)}" if where else ""
        )
        try:
            return self._fetch(sql, _src(source))
        except DataSourceError:
            schema = self.source_schema(source)  # name the missing column if that was it
            names = set(schema.names) if schema is not None else set()
            missing = [c for c in columns if c not in names]
            if missing:
                raise SourceColumnMissing(
                    f"{_src(source)} has no column {missing[0]!r}; its columns are {sorted(names)}"
                ) from None
            raise

    def query(self, sql: str) -> pa.Table:
        """Entity rows given as SQL: run in Postgres, read back in Arrow."""
        if not sql.strip():
            raise EntityDataError("entity_df is an empty SQL string")
        return self._fetch(sql.strip().rstrip(";"), "entity_df query")

    def append(self, source: DataSource, rows: pa.Table) -> None:
        """Offline push: stage ``rows`` in a temp table (binary COPY), then ONE ``INSERT``
        into the source table (a single statement: all rows land or none), then drop the
        temp table."""
        if not isinstance(source, PostgreSQLSource) or not source.table:
            raise DataSourceError(
                f"source {source.name!r}: offline push needs a PostgreSQLSource with table=, "
                "not query= (a query has no table to add rows to)"
            )
        schema = self.source_schema(source)
        assert schema is not None
        names = set(schema.names)
        extra = [c for c in rows.column_names if c not in names]
        if extra:
            raise SchemaMismatch(
                f"pushed rows have column(s) {extra} that table {source.table!r} of source "
                f"{source.name!r} lacks; add the columns to the table or drop them from the frame"
            )
        stage_name = f"_banquet_push_{uuid.uuid4().hex[:12]}"
        stage = _quote_ident(stage_name)
        cols = ", ".join(_quote_ident(c) for c in rows.column_names)
        staged = _plain(rows)

        def op(cur: Cursor) -> None:
            cur.adbc_ingest(stage_name, staged, mode="create", temporary=True)
            try:
                # one statement: every row lands or none does
                cur.execute(f"INSERT INTO {source.table} ({cols}) SELECT {cols} FROM {stage}")
            except Exception as e:
                raise SchemaMismatch(
                    f"pushed rows do not fit table {source.table!r} of source {source.name!r}: "
                    f"{_one_line(e)}"
                ) from None
            finally:
                with contextlib.suppress(Exception):
                    cur.execute(f"DROP TABLE IF EXISTS {stage}")

        # no retry: after a lost connection the INSERT may have committed
        self.run(f"offline push to {_src(source)}", op, retry=False)

    def write_table(self, name: str, rows: pa.Table, *, replace: bool = True) -> None:
        """Create table ``name`` in ``db_schema`` (the schema too, if missing) from Arrow rows
        by binary COPY; ``replace`` drops an existing table of that name first, else rows are
        appended to it. For loading example or test data."""
        schema = self.cfg.db_schema

        def op(cur: Cursor) -> None:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}")
            data = _plain(rows)
            if replace:
                cur.adbc_ingest(name, data, mode="replace", db_schema_name=schema)
            else:
                cur.adbc_ingest(name, data, mode="create_append", db_schema_name=schema)

        self.run(f"writing table {schema}.{name}", op, retry=False)


def _src(source: DataSource) -> str:
    if isinstance(source, PostgreSQLSource) and source.table:
        return f"source {source.name!r} (table {source.table})"
    return f"source {source.name!r}"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ts_literal(us: int) -> str:
    """A timestamptz constant for ``us`` µs since the epoch. A typed string literal becomes a
    constant when the query is parsed; ``'epoch' + n * interval`` would be re-evaluated for
    every row of a sequential scan (timestamptz arithmetic is only STABLE)."""
    from datetime import datetime, timedelta, timezone

    try:
        t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(us))
    except OverflowError:
        return "'-infinity'::timestamptz" if us < 0 else "'infinity'::timestamptz"
    return f"'{t.isoformat(timespec='microseconds')}'::timestamptz"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return re.sub(r"^(ProgrammingError|OperationalError|InternalError|IOError):\s*", "", text)


def _plain(table: pa.Table) -> pa.Table:
    """Drop the driver's per-field metadata; Postgres numerics (an opaque string extension
    type) become float64."""
    import pyarrow as pa

    fields, arrays = [], []
    for f, col in zip(table.schema, table.columns):
        t = f.type
        if isinstance(t, pa.ExtensionType):
            col = pa.chunked_array([c.storage for c in col.chunks], t.storage_type)
            if getattr(t, "type_name", "") == "numeric":
                col = col.cast(pa.float64())
        fields.append(pa.field(f.name, col.type, f.nullable))
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _close_quietly(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _is_connection_lost(conn: Connection, text: str) -> bool:
    low = text.lower()
    if any(m in low for m in ("server closed", "connection", "terminating", "no connection")):
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()
        except Exception:
            return True
    return False
