"""The Postgres online store: one table per (project, feature view), a psycopg connection pool.

Layout (in ``online_store.db_schema``):

* table ``"<project>:<view>"`` (``entity_key bytea PRIMARY KEY, event_ts bigint, created_ts
  bigint, value bytea``); a name longer than Postgres' 63 bytes is cut and ends in ``#`` and
  a hash of the full name, so it still names one (project, view) pair;
* table ``banquet_online_views (project, view, table_name)``: which tables belong to which
  project, so ``teardown`` drops exactly this project's tables.

A small write is ONE ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`` whose
``WHERE (excluded.event_ts, excluded.created_ts) >= (t.event_ts, t.created_ts)`` keeps the
newer event, inside Postgres; its four arrays are binary parameters built in Rust
(``_core.pg_array_params``), one round trip. A large one (binary ``COPY``) runs in one transaction under a
lock that stops other writers of the table: straight into a fresh table, else into a staging
table, then UPDATE-if-newer and INSERT of the new keys (see ``WriteSql``).
A read is one statement for every view of a request (``UNION ALL`` of ``entity_key =
ANY(...)``): one round trip.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from banquet import _core
from banquet.errors import ConfigError, StoreError, StoreUnavailable
from banquet.online.base import OnlineStore, batch_columns
from banquet.redact import redact_text

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool
    import pyarrow as pa

    from banquet.config import PostgresOnlineConfig, RepoConfig
    from banquet.feature_view import FeatureView

T = TypeVar("T")

VIEWS_TABLE = "banquet_online_views"
IN_KEYS = 16  # up to this many keys per view, a read lists them; beyond, one array
COPY_ROWS = 1000  # from this many rows, stage with COPY; below, one statement with arrays
_BYTEA_ARRAY_OID = 1001
_INT8_ARRAY_OID = 1016
POOL_TIMEOUT_S = 10.0  # waiting for a free pooled connection
_MAX_IDENT = 63  # Postgres truncates longer identifiers (NAMEDATALEN - 1)
_TRANSIENT_FATAL = ("the database system is", "too many", "remaining connection slots")
_DDL_LOCK = 0x62616E71  # advisory lock taken around DDL, so concurrent applies don't race


def table_name(project: str, view: str) -> str:
    """The table of one (project, view): ``"<project>:<view>"`` (':' occurs in neither)."""
    name = f"{project}:{view}"
    if len(name.encode()) <= _MAX_IDENT:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=5).hexdigest()
    return name[: _MAX_IDENT - len(digest) - 1] + "#" + digest


class PostgresOnlineStore(OnlineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        cfg: PostgresOnlineConfig = config.online_store  # type: ignore[assignment]
        self.cfg = cfg
        self.schema = cfg.db_schema
        self.address = redact_text(f"{cfg.host}:{cfg.port}/{cfg.database}", cfg.password)
        self._pool: psycopg_pool.ConnectionPool | None = None
        self._lock = threading.Lock()
        if not cfg.timeout_seconds > 0:
            raise ConfigError(
                f"online_store.timeout_seconds must be a positive number of seconds, "
                f"not {cfg.timeout_seconds!r}"
            )
        self._watchdog = _Watchdog(cfg.timeout_seconds)

    # --- connections -----------------------------------------------------------------------

    def _conninfo(self) -> str:
        # a server that vanishes without closing the socket is noticed, not waited on
        return self.cfg.conninfo(
            "banquet-online",
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=2,
            keepalives_count=3,
        )

    def _get_pool(self) -> psycopg_pool.ConnectionPool:
        pool = self._pool
        if pool is not None:
            return pool
        with self._lock:
            if self._pool is None:
                import psycopg
                from psycopg_pool import ConnectionPool

                conninfo = self._conninfo()
                # One direct connection first: an unreachable server fails now, in
                # milliseconds, instead of after the pool's wait for a connection.
                error: StoreError | None = None
                try:
                    psycopg.connect(conninfo).close()
                except psycopg.Error as e:
                    error = self._connect_error(e)
                if error is not None:  # raised here: psycopg's error is not its __context__
                    raise error
                pool = ConnectionPool(
                    conninfo,
                    min_size=max(0, self.cfg.min_conn),
                    max_size=max(1, self.cfg.max_conn, self.cfg.min_conn),
                    kwargs={"autocommit": True},
                    configure=_configure,
                    timeout=POOL_TIMEOUT_S,
                    name=f"banquet-online-{self.cfg.host}:{self.cfg.port}",
                    open=False,
                )
                pool.open(wait=False)
                self._pool = pool
            return self._pool

    def _reset_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=1.0)

    def _connect_error(self, e: BaseException) -> StoreError:
        """A refused connection: the server is unavailable, unless it answered and rejected
        the settings (unknown database or user, wrong password): that is not retryable."""
        text = redact_text(" ".join(str(e).split()), self.cfg.password)
        if "FATAL:" in text and not any(m in text for m in _TRANSIENT_FATAL):
            return StoreError(f"Postgres online store at {self.address}: cannot connect: {text}")
        return self._unavailable("connect", e)

    def _unavailable(self, what: str, e: BaseException) -> StoreUnavailable:
        text = redact_text(" ".join(str(e).split()), self.cfg.password)
        return StoreUnavailable(
            f"Postgres online store at {self.address} is unavailable ({what}): {text}"
        )

    def _run(
        self, what: str, work: Callable[[psycopg.Connection[Any]], T], scale: float = 1.0
    ) -> T:
        """``work(connection)`` on a pooled connection. A lost connection (a server restart)
        is retried once on a fresh pool: every operation here is idempotent. A server that
        cannot be reached, or leaves the operation unanswered for ``timeout_seconds`` x
        ``scale``, raises StoreUnavailable."""
        import psycopg

        watchdog = self._watchdog
        for attempt in range(2):
            watch = None
            try:
                with self._get_pool().connection() as conn:
                    watch = watchdog.start(conn, scale)
                    try:
                        return work(conn)
                    finally:
                        watchdog.stop(watch)
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                if watch is not None and watchdog.expired(watch):
                    raise StoreUnavailable(
                        f"Postgres online store at {self.address} is unavailable ({what}): "
                        f"no answer within {watchdog.timeout * scale:g} s (timeout_seconds)"
                    ) from None
                if not _is_connection_error(e):
                    raise StoreError(f"Postgres online store: {what}: {e}") from None
                self._reset_pool()
                if attempt:
                    raise self._unavailable(what, e) from None
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _ddl(self, conn: psycopg.Connection[Any]) -> Iterator[None]:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_DDL_LOCK])
            yield

    # --- the interface ---------------------------------------------------------------------

    def create_view(self, project: str, view: FeatureView) -> None:
        from psycopg import sql

        storage = view.storage_name  # the view's name, or a later generation's
        schema, name = self.schema, table_name(project, storage)

        def work(conn: psycopg.Connection[Any]) -> None:
            with self._ddl(conn):
                _ensure_views_table(conn, schema)
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (entity_key bytea PRIMARY KEY, "
                        "event_ts bigint NOT NULL, created_ts bigint NOT NULL, "
                        "value bytea NOT NULL)"
                    ).format(sql.Identifier(schema, name))
                )
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (project, view, table_name) VALUES (%s, %s, %s) "
                        "ON CONFLICT (project, view) DO UPDATE SET table_name = excluded.table_name"
                    ).format(sql.Identifier(schema, VIEWS_TABLE)),
                    [project, storage, name],
                )

        self._run(f"create the table of feature view {storage!r}", work)

    def drop_view(self, project: str, view_name: str) -> None:
        self._forget_ensured(project, view_name)
        self._run(
            f"drop feature view {view_name!r}", lambda conn: self._drop(conn, project, [view_name])
        )

    def teardown(self, project: str) -> None:
        from psycopg import sql

        def work(conn: psycopg.Connection[Any]) -> None:
            if not _views_table_exists(conn, self.schema):
                return
            rows = conn.execute(
                sql.SQL("SELECT view FROM {} WHERE project = %s").format(
                    sql.Identifier(self.schema, VIEWS_TABLE)
                ),
                [project],
            ).fetchall()
            self._drop(conn, project, [r[0] for r in rows])

        self._run(f"teardown of project {project!r}", work)

    def _drop(self, conn: psycopg.Connection[Any], project: str, views: list[str]) -> None:
        from psycopg import sql

        if not views:
            return
        with self._ddl(conn):
            for v in views:
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {}").format(
                        sql.Identifier(self.schema, table_name(project, v))
                    )
                )
            if _views_table_exists(conn, self.schema):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE project = %s AND view = ANY(%s)").format(
                        sql.Identifier(self.schema, VIEWS_TABLE)
                    ),
                    [project, views],
                )

    def write(
        self, project: str, view_name: str, batch: pa.RecordBatch, *, overwrite: bool = False
    ) -> None:
        if not batch.num_rows:
            return
        keys, event_ts, created_ts, blobs = batch_columns(batch)
        try:
            if batch.num_rows < COPY_ROWS:
                # a small write (push): ONE upsert statement in one round trip, its four
                # arrays binary parameters built in Rust (a COPY would take a staging table,
                # the table lock and 4 round trips)
                params = _core.pg_array_params(keys, event_ts, created_ts, blobs)
                if params is None:  # a key repeats: an upsert may not touch a row twice
                    keys, event_ts, created_ts, blobs = _latest_per_key(
                        keys, event_ts, created_ts, blobs
                    )
                    params = _core.pg_array_params(keys, event_ts, created_ts, blobs)
                    assert params is not None, "rows were reduced to one per key"
                q = _write_sql(self.schema, table_name(project, view_name))
                upsert = q.overwrite_arrays if overwrite else q.upsert_arrays
                args = _array_args(params)
                # one statement in autocommit is its own transaction (no BEGIN / COMMIT trips)
                self._write(view_name, lambda conn: conn.execute(upsert, args), len(keys), tx=False)
                return
            data = _core.pg_copy_rows(keys, event_ts, created_ts, blobs)
            if data is None:  # a key repeats: the latest row per key (in Rust), then COPY
                keys, event_ts, created_ts, blobs = _latest_per_key(
                    keys, event_ts, created_ts, blobs
                )
                data = _core.pg_copy_rows(keys, event_ts, created_ts, blobs)
                assert data is not None, "rows were reduced to one per key"
        except TypeError as e:
            raise StoreError(f"Postgres online store: write to {view_name!r}: {e}") from None
        self._copy(project, view_name, data, len(keys), overwrite)

    def _copy(
        self, project: str, view_name: str, data: bytes, rows: int, overwrite: bool = False
    ) -> None:
        """Load rows given as COPY binary data (one row per key), keeping newer events (or,
        with ``overwrite``, the given rows)."""
        q = _write_sql(self.schema, table_name(project, view_name))

        def work(conn: psycopg.Connection[Any]) -> None:
            conn.execute(q.lock)
            row = conn.execute(q.is_empty).fetchone()
            if row and row[0]:  # a fresh table (a first materialization): COPY straight in
                with conn.cursor() as cur, cur.copy(q.copy_target) as copy:
                    copy.write(data)
                return
            conn.execute(q.create_stage)
            with conn.cursor() as cur, cur.copy(q.copy_stage) as copy:
                copy.write(data)
            conn.execute(q.overwrite_from_stage if overwrite else q.update_from_stage)
            conn.execute(q.insert_from_stage)

        self._write(view_name, work, rows)

    def _write(
        self,
        view_name: str,
        work: Callable[[psycopg.Connection[Any]], object],
        rows: int,
        *,
        tx: bool = True,
    ) -> None:
        """Run ``work`` (writing ``rows`` rows) in one transaction (``tx=False``: ``work`` is
        one statement, atomic by itself in autocommit), with the write's errors typed."""
        import psycopg

        def in_tx(conn: psycopg.Connection[Any]) -> None:
            with conn.transaction():
                work(conn)

        try:
            self._run(
                f"write to feature view {view_name!r}",
                in_tx if tx else work,
                max(1.0, rows / 100_000),
            )
        except psycopg.errors.UndefinedTable:
            raise _no_table(view_name) from None
        except psycopg.Error as e:
            raise StoreError(f"Postgres online store: write to {view_name!r}: {e}") from None

    def read(
        self, project: str, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        import psycopg

        if not any(len(keys) for _, keys in requests):
            return [[None] * len(keys) for _, keys in requests]
        # a few keys: "IN (%s, ...)", one parameter each (the usual online request, and
        # measurably faster than an array); more: "= ANY(%s)" with one array parameter
        shape = tuple((v, len(k) if len(k) <= IN_KEYS else -1) for v, k in requests)
        query = _read_sql(self.schema, project, shape)
        params: list[Any] = []
        for _, keys in requests:
            if len(keys) <= IN_KEYS:
                params.extend(keys)
            else:
                params.append(keys if isinstance(keys, list) else list(keys))

        def work(conn: psycopg.Connection[Any]) -> list[Any]:
            return conn.execute(query, params, binary=True).fetchall()

        try:
            rows = self._run("read", work)
        except psycopg.errors.UndefinedTable as e:
            raise _no_table(_missing_view(e, project, requests)) from None
        except psycopg.Error as e:
            raise StoreError(f"Postgres online store: read: {e}") from None
        found: list[dict[bytes, bytes]] = [{} for _ in requests]
        for i, key, value in rows:
            found[i][key] = value
        return [[f.get(k) for k in keys] for f, (_, keys) in zip(found, requests)]

    def close(self) -> None:
        self._reset_pool()


class _Watchdog:
    """Gives each operation a deadline: libpq never times out a server that stalls (accepts,
    never answers; TCP keepalives only catch a dead peer), so a daemon thread, started on
    first use and waking every ``TICK_S``, shuts down the socket of an operation past its
    deadline. The blocked call then fails at once as a lost connection, and ``expired``
    tells the caller why. Starting and stopping a watch is a dict store and a pop."""

    TICK_S = 0.25

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._active: dict[int, tuple[float, int]] = {}  # watch -> (deadline, socket fd)
        self._expired: set[int] = set()
        self._ids = itertools.count(1)  # next() on it is atomic
        self._thread: threading.Thread | None = None

    def start(self, conn: psycopg.Connection[Any], scale: float) -> int:
        thread = self._thread
        if thread is None or not thread.is_alive():  # first use, or a forked child
            self._thread = thread = threading.Thread(
                target=self._loop, name="banquet-postgres-watchdog", daemon=True
            )
            thread.start()
        watch = next(self._ids)
        self._active[watch] = (time.monotonic() + self.timeout * scale, conn.pgconn.socket)
        return watch

    def stop(self, watch: int) -> None:
        self._active.pop(watch, None)

    def expired(self, watch: int) -> bool:
        if watch in self._expired:
            self._expired.discard(watch)
            return True
        return False

    def _loop(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            now = time.monotonic()
            for watch, (deadline, fd) in list(self._active.items()):
                if deadline < now and self._active.pop(watch, None) is not None:
                    self._expired.add(watch)
                    with contextlib.suppress(OSError):
                        # a duplicate of libpq's descriptor: shutting it down ends the
                        # connection for libpq too; closing the duplicate leaves libpq's
                        sock = socket.socket(fileno=os.dup(fd))
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        finally:
                            sock.close()


# --- SQL ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _read_sql(schema: str, project: str, shape: tuple[tuple[str, int], ...]) -> str:
    """One SELECT per (view, number of keys or -1 for an array), glued with UNION ALL and
    tagged by request index."""
    from psycopg import sql

    parts = []
    for i, (view, n) in enumerate(shape):
        if n < 0:
            where = "= ANY(%s::bytea[])"
        elif n == 0:
            continue
        else:
            where = "IN (" + ", ".join(["%s::bytea"] * n) + ")"
        parts.append(
            sql.SQL("SELECT {}::int4, entity_key, value FROM {} WHERE entity_key " + where)
            .format(sql.Literal(i), sql.Identifier(schema, table_name(project, view)))
            .as_string(None)
        )
    return " UNION ALL ".join(parts)


class WriteSql(NamedTuple):
    upsert_arrays: str  # a small batch: one INSERT ... ON CONFLICT DO UPDATE ... WHERE newer
    lock: str  # a large one: stop other writers of the table (not readers) ...
    is_empty: str  # ... a fresh table gets the rows by COPY, nothing to compare with ...
    copy_target: str
    create_stage: str  # ... else COPY into a staging table, then
    copy_stage: str
    update_from_stage: str  # UPDATE the stored rows that are not newer
    insert_from_stage: str  # and a plain INSERT of the keys not stored yet
    overwrite_arrays: str  # upsert_arrays and update_from_stage replacing newer rows too
    overwrite_from_stage: str


@functools.lru_cache(maxsize=512)
def _write_sql(schema: str, table: str) -> WriteSql:
    """The statements of a write. UPDATE + plain INSERT under the lock take about half the
    time of ON CONFLICT's speculative insertion for new rows; COPY into a fresh table about
    half of that again."""
    from psycopg import sql

    target = sql.Identifier(schema, table)

    def text(template: str) -> str:
        return sql.SQL(template).format(t=target).as_string(None)

    columns = "(entity_key, event_ts, created_ts, value)"
    upsert = (
        "INSERT INTO {t} AS t " + columns + " "
        "SELECT * FROM unnest(%b::bytea[], %b::int8[], %b::int8[], %b::bytea[]) "
        "ON CONFLICT (entity_key) DO UPDATE SET event_ts = excluded.event_ts, "
        "created_ts = excluded.created_ts, value = excluded.value"
    )
    update = (
        "UPDATE {t} AS t SET event_ts = s.event_ts, created_ts = s.created_ts, "
        "value = s.value FROM banquet_stage AS s WHERE t.entity_key = s.entity_key"
    )
    return WriteSql(
        upsert_arrays=text(
            upsert + " WHERE (excluded.event_ts, excluded.created_ts) >= (t.event_ts, t.created_ts)"
        ),
        lock=text("LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE"),
        is_empty=text("SELECT NOT EXISTS (SELECT FROM {t})"),
        copy_target=text("COPY {t} " + columns + " FROM STDIN (FORMAT BINARY)"),
        create_stage=(
            "CREATE TEMP TABLE banquet_stage (entity_key bytea, event_ts bigint, "
            "created_ts bigint, value bytea) ON COMMIT DROP"
        ),
        copy_stage="COPY banquet_stage " + columns + " FROM STDIN (FORMAT BINARY)",
        update_from_stage=text(
            update + " AND (s.event_ts, s.created_ts) >= (t.event_ts, t.created_ts)"
        ),
        insert_from_stage=text(
            "INSERT INTO {t} " + columns + " "
            "SELECT s.entity_key, s.event_ts, s.created_ts, s.value FROM banquet_stage AS s "
            "WHERE NOT EXISTS (SELECT FROM {t} AS t WHERE t.entity_key = s.entity_key)"
        ),
        overwrite_arrays=text(upsert),
        overwrite_from_stage=text(update),
    )


def _views_table_exists(conn: psycopg.Connection[Any], schema: str) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        ['"' + schema.replace('"', '""') + '"."' + VIEWS_TABLE + '"'],
    ).fetchone()
    return bool(row and row[0])


def _ensure_views_table(conn: psycopg.Connection[Any], schema: str) -> None:
    from psycopg import sql

    # CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists
    if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema]).fetchone():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (project text NOT NULL, view text NOT NULL, "
            "table_name text NOT NULL, PRIMARY KEY (project, view))"
        ).format(sql.Identifier(schema, VIEWS_TABLE))
    )


# --- helpers -----------------------------------------------------------------------------------


def _latest_per_key(
    keys: pa.Array, event_ts: pa.Array, created_ts: pa.Array, blobs: pa.Array
) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    """One row per key (an upsert may not touch a row twice): the newest, the later one on a
    full tie, as if the rows were written one after another (``_core.latest_per_key``'s
    tie rules, with a null created time as 0). The arrays as they are when no key repeats."""
    import pyarrow as pa

    try:
        cr = created_ts.cast(pa.int64()).fill_null(0)
        idx = _core.latest_per_key([keys], event_ts.cast(pa.int64()), cr, None, None)
    except (pa.ArrowException, ValueError) as e:
        raise TypeError(str(e)) from None
    if len(idx) == len(keys):
        return keys, event_ts, created_ts, blobs
    return keys.take(idx), event_ts.take(idx), created_ts.take(idx), blobs.take(idx)


class _ByteaArray:
    """A ``bytea[]`` parameter already in Postgres' binary array format (from Rust)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Int8Array(_ByteaArray):
    """An ``int8[]`` parameter already in Postgres' binary array format (from Rust)."""

    __slots__ = ()


def _array_args(params: tuple[bytes, bytes, bytes, bytes]) -> list[Any]:
    keys, event_ts, created_ts, values = params
    return [_ByteaArray(keys), _Int8Array(event_ts), _Int8Array(created_ts), _ByteaArray(values)]


@functools.cache
def _array_dumpers() -> tuple[type[Any], type[Any]]:
    """psycopg dumpers passing the Rust-built arrays through as binary parameters."""
    from psycopg import pq
    from psycopg.adapt import Dumper

    class ByteaArrayDumper(Dumper):
        format = pq.Format.BINARY
        oid = _BYTEA_ARRAY_OID

        def dump(self, obj: _ByteaArray) -> bytes:
            return obj.data

    class Int8ArrayDumper(ByteaArrayDumper):
        oid = _INT8_ARRAY_OID

    return ByteaArrayDumper, Int8ArrayDumper


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Each pooled connection, when made: the dumpers of the small write's parameters."""
    bytea, int8 = _array_dumpers()
    conn.adapters.register_dumper(_ByteaArray, bytea)
    conn.adapters.register_dumper(_Int8Array, int8)


def _is_connection_error(e: BaseException) -> bool:
    """The server is gone or refuses connections (not: a statement failed)."""
    import psycopg
    from psycopg_pool import PoolTimeout

    if isinstance(e, (PoolTimeout, psycopg.InterfaceError)):
        return True
    state = getattr(e, "sqlstate", None)
    # no SQLSTATE: libpq lost the connection; 08: connection exceptions; 57P0x: shutdown
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def _missing_view(e: BaseException, project: str, requests: Sequence[tuple[str, Any]]) -> str:
    for view, _ in requests:
        if table_name(project, view) in str(e):
            return view
    return requests[0][0] if requests else "?"


def _no_table(view: str) -> StoreError:
    return StoreError(
        f"the online store has no table for feature view {view!r}; run `banquet apply` "
        "(and materialize) first"
    )
