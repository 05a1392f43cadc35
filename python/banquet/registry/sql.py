"""The SQL registry: project states in PostgreSQL tables, safe for concurrent writers.

``registry: {registry_type: sql, path: postgresql://user:password@host:port/database}``; an
optional ``?schema=NAME`` query parameter puts the tables in that schema (created if missing);
without it they go where the connection's ``search_path`` points (usually ``public``).

Tables (created on first write, under an advisory lock so two processes may race to it):

* ``banquet_registry_projects (project PK, version, last_updated, materializations, extra)``:
  one row per project; ``version`` grows by one on every write.
* ``banquet_registry_objects (project, kind, name, record)``, primary key ``(project, kind,
  name)``: one row per definition, ``record`` its ``to_dict()`` as ``jsonb``.

Concurrency: ``update`` runs in ONE transaction that first locks the project's row (``SELECT
... FOR UPDATE``, inserting the row if the project is new), then reads the state, applies the
change and writes only the rows that differ. Concurrent updates of one project therefore run
one after the other, each on the other's committed result: no object is ever lost, nothing
has to be retried. A writer that waits longer than ``LOCK_TIMEOUT_S`` for the lock, or that
Postgres picks as a deadlock victim, gets :class:`RegistryConflict` and changed nothing. A
writer that dies mid-update leaves no trace: Postgres rolls its transaction back when the
connection drops.

Reads take one statement (one snapshot, one round trip). ``read_if_changed`` sends the version
the caller holds and gets the objects back only when the project changed since.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from banquet.errors import ConfigError, RegistryConflict, RegistryError, RegistryUnavailable
from banquet.redact import redact_text
from banquet.registry.base import KINDS, Registry, State, check_state, empty_state

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

PROJECTS_TABLE = "banquet_registry_projects"
OBJECTS_TABLE = "banquet_registry_objects"
CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_S = 120  # waiting for another writer of the same project
_DDL_LOCK = (0x62616E71, 0x72656769)  # advisory lock ('banq', 'regi') around CREATE TABLE
_BOOKKEEPING = ("materializations", "version", "last_updated")
_TRANSIENT_FATAL = ("the database system is", "too many", "remaining connection slots")
_SCHEMES = ("postgresql", "postgres")  # also with a SQLAlchemy driver suffix: postgresql+psycopg


class SqlRegistry(Registry):
    def __init__(self, path: str) -> None:
        self.conninfo, self.schema, self.address = parse_path(path)
        self._password = _password_of(self.conninfo)
        self._conn: psycopg.Connection[Any] | None = None
        self._conn_lock = threading.Lock()  # the shared read connection
        self._tables_ready = False

    def __repr__(self) -> str:
        return f"SqlRegistry({self.address!r})"

    # --- connections -------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "registry_type: sql needs psycopg; install it with: pip install 'banquet[postgres]'"
            ) from None
        try:
            return psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="banquet-registry",
                # a server that vanishes without closing the socket is noticed, not waited on
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=2,
                keepalives_count=3,
            )
        except psycopg.Error as e:
            text = self._clean(e)
            error: RegistryError
            if "FATAL:" in text and not any(m in text for m in _TRANSIENT_FATAL):
                # the server answered and refused (unknown database or user, bad password):
                # retrying will not help, the settings must change
                error = RegistryError(
                    f"SQL registry at {self.address}: cannot connect: {text}; fix registry.path "
                    "in feature_store.yaml"
                )
            else:
                error = self._unavailable("cannot connect", e)
        # raised outside the handler: psycopg's error is not carried along as __context__
        raise error

    def _unavailable(self, what: str, e: BaseException) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"SQL registry at {self.address}: {what}: {self._clean(e)}; check that the server "
            "is running and that registry.path in feature_store.yaml is right"
        )

    def _clean(self, e: BaseException) -> str:
        return redact_text(" ".join(str(e).split()), self._password, self.conninfo)

    def _read(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(conn)`` on the shared read connection; a connection lost since its last use
        (a server restart) is replaced once, as reads are safe to repeat."""
        import psycopg

        with self._conn_lock:
            for attempt in range(2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                    # closed with the registry, not left to psycopg's "deleted while open"
                    weakref.finalize(self, self._conn.close)
                try:
                    return work(self._conn)
                except psycopg.OperationalError as e:
                    self._conn.close()
                    self._conn = None
                    if attempt:
                        raise self._unavailable("lost the connection", e) from None
                except psycopg.Error as e:
                    raise RegistryError(
                        f"SQL registry at {self.address}: {self._clean(e)}"
                    ) from None
        raise AssertionError("unreachable")

    @contextmanager
    def _writing(self, project: str) -> Iterator[psycopg.Connection[Any]]:
        """A fresh connection holding one transaction; its errors become typed ones."""
        import psycopg

        conn = self._connect()
        try:
            self._ensure_tables(conn)
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'")
                yield conn
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as e:
            raise RegistryConflict(
                f"SQL registry at {self.address}: another process is changing project "
                f"{project!r} and held it for more than {LOCK_TIMEOUT_S} s (or the two waited "
                f"on each other): nothing was changed; re-run when it has finished "
                f"({self._clean(e)})"
            ) from None
        except psycopg.OperationalError as e:
            raise self._unavailable(
                "lost the connection; the change was rolled back unless the loss came during "
                "the commit (run `banquet plan` to see)",
                e,
            ) from None
        except psycopg.Error as e:
            raise RegistryError(f"SQL registry at {self.address}: {self._clean(e)}") from None
        finally:
            conn.close()

    # --- tables ------------------------------------------------------------------------

    def _table(self, name: str) -> Any:
        from psycopg import sql

        return sql.Identifier(self.schema, name) if self.schema else sql.Identifier(name)

    def _ensure_tables(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema and tables if missing; concurrent first writers wait on one
        lock. Existing tables are used as they are (no DDL, so no CREATE privilege needed)."""
        if self._tables_ready:
            return
        from psycopg import sql

        names = [self._table(t).as_string(conn) for t in (PROJECTS_TABLE, OBJECTS_TABLE)]
        found = conn.execute("SELECT to_regclass(%s), to_regclass(%s)", names).fetchone()
        if found is not None and None not in found:
            self._tables_ready = True
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _DDL_LOCK)
            if self.schema:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
                )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (project text PRIMARY KEY, "
                    "version bigint NOT NULL, last_updated timestamptz, "
                    "materializations jsonb NOT NULL DEFAULT '{{}}', "
                    "extra jsonb NOT NULL DEFAULT '{{}}')"
                ).format(self._table(PROJECTS_TABLE))
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (project text NOT NULL, kind text NOT NULL, "
                    "name text NOT NULL, record jsonb NOT NULL, "
                    "PRIMARY KEY (project, kind, name))"
                ).format(self._table(OBJECTS_TABLE))
            )
        self._tables_ready = True

    # --- reading -----------------------------------------------------------------------

    def _select_state(self, changed_since: bool) -> Any:
        """One statement: the project row and, as one jsonb array, its objects. With
        ``changed_since`` the objects come back only if (version, last_updated) differ from
        the two extra parameters."""
        from psycopg import sql

        objects: sql.Composable = sql.SQL(
            "(SELECT coalesce(jsonb_agg(jsonb_build_array(o.kind, o.name, o.record)), '[]') "
            "FROM {} o WHERE o.project = p.project)"
        ).format(self._table(OBJECTS_TABLE))
        if changed_since:
            same = sql.SQL(
                "p.version = %(version)s AND p.last_updated IS NOT DISTINCT FROM %(stamp)s"
            )
            objects = sql.SQL("CASE WHEN {} THEN NULL ELSE {} END").format(same, objects)
            meta: sql.Composable = sql.SQL(
                "CASE WHEN {} THEN NULL ELSE p.materializations END, "
                "CASE WHEN {} THEN NULL ELSE p.extra END"
            ).format(same, same)
        else:
            meta = sql.SQL("p.materializations, p.extra")
        return sql.SQL(
            "SELECT p.version, p.last_updated, {}, {} FROM {} p WHERE p.project = %(project)s"
        ).format(meta, objects, self._table(PROJECTS_TABLE))

    def read(self, project: str) -> State:
        row = self._read(
            lambda conn: _fetch_missing_ok(conn, self._select_state(False), {"project": project})
        )
        return empty_state() if row is None else check_state(_state_from_row(row), project)

    def read_if_changed(self, project: str, version: int, last_updated: str | None) -> State | None:
        params = {"project": project, "version": version, "stamp": _parse_stamp(last_updated)}
        row = self._read(lambda conn: _fetch_missing_ok(conn, self._select_state(True), params))
        if row is None:
            return None if version == 0 and last_updated is None else empty_state()
        if row[2] is None:  # unchanged: the server sent no objects
            return None
        return check_state(_state_from_row(row), project)

    def projects(self) -> list[str]:
        from psycopg import sql

        query = sql.SQL("SELECT project FROM {} ORDER BY project").format(
            self._table(PROJECTS_TABLE)
        )

        def work(conn: psycopg.Connection[Any]) -> list[str]:
            import psycopg

            try:
                return [r[0] for r in conn.execute(query).fetchall()]
            except psycopg.errors.UndefinedTable:
                return []  # never written to: reading creates nothing

        return self._read(work)

    # --- writing -----------------------------------------------------------------------

    def update(self, project: str, change: Callable[[State], bool]) -> State:
        try:
            with self._writing(project) as conn:
                _lock_project(conn, self._table(PROJECTS_TABLE), project)
                row = conn.execute(self._select_state(False), {"project": project}).fetchone()
                old = _state_from_row(row)
                state = copy.deepcopy(old)
                if change(state) is False:
                    raise _Unchanged(state)  # rolls back (a new project's row included)
                self.stamp(state)
                self._write_changes(conn, project, old, state)
                return state
        except _Unchanged as unchanged:
            return unchanged.state
        raise AssertionError("unreachable")

    def _write_changes(
        self, conn: psycopg.Connection[Any], project: str, old: State, new: State
    ) -> None:
        """Write the rows that differ between ``old`` and ``new``, then the project row."""
        from psycopg import sql
        from psycopg.types.json import Jsonb

        upserts: list[tuple[str, str, str, Any]] = []
        deletes: list[tuple[str, str, str]] = []
        for kind in KINDS:
            before, after = old.get(kind) or {}, new.get(kind) or {}
            deletes += [(project, kind, n) for n in before if n not in after]
            upserts += [
                (project, kind, n, Jsonb(r)) for n, r in after.items() if before.get(n) != r
            ]
        objects = self._table(OBJECTS_TABLE)
        with conn.cursor() as cur:
            if deletes:
                cur.executemany(
                    sql.SQL("DELETE FROM {} WHERE project = %s AND kind = %s AND name = %s").format(
                        objects
                    ),
                    deletes,
                )
            if upserts:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (project, kind, name, record) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (project, kind, name) DO UPDATE SET record = excluded.record"
                    ).format(objects),
                    upserts,
                )
        extra = {k: v for k, v in new.items() if k not in _BOOKKEEPING and k not in KINDS}
        conn.execute(
            sql.SQL(
                "UPDATE {} SET version = %s, last_updated = %s, materializations = %s, "
                "extra = %s WHERE project = %s"
            ).format(self._table(PROJECTS_TABLE)),
            [
                new["version"],
                _parse_stamp(new["last_updated"]),
                Jsonb(new.get("materializations") or {}),
                Jsonb(extra),
                project,
            ],
        )

    def delete_project(self, project: str) -> None:
        from psycopg import sql

        with self._writing(project) as conn:
            found = conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE project = %s FOR UPDATE").format(
                    self._table(PROJECTS_TABLE)
                ),
                [project],
            ).fetchone()
            if found is None:
                return
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE project = %s").format(self._table(OBJECTS_TABLE)),
                [project],
            )
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE project = %s").format(self._table(PROJECTS_TABLE)),
                [project],
            )

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _Unchanged(Exception):
    """Raised inside the write transaction when ``change`` wrote nothing: rolls it back."""

    def __init__(self, state: State) -> None:
        super().__init__()
        self.state = state


# --- helpers -----------------------------------------------------------------------------


def _lock_project(conn: psycopg.Connection[Any], table: Any, project: str) -> None:
    """Lock the project's row for this transaction, inserting it first if it is new. A row
    deleted while this transaction waited for it (a concurrent teardown) is inserted again."""
    from psycopg import sql

    insert = sql.SQL(
        "INSERT INTO {} (project, version) VALUES (%s, 0) ON CONFLICT (project) DO NOTHING"
    ).format(table)
    lock = sql.SQL("SELECT 1 FROM {} WHERE project = %s FOR UPDATE").format(table)
    for _ in range(5):
        conn.execute(insert, [project])
        if conn.execute(lock, [project]).fetchone() is not None:
            return
    raise RegistryConflict(
        f"project {project!r} was deleted again and again (teardown) while this process tried "
        "to change it; nothing was changed: re-run when the other processes have finished"
    )


def _fetch_missing_ok(conn: psycopg.Connection[Any], query: Any, params: dict[str, Any]) -> Any:
    import psycopg

    try:
        return conn.execute(query, params).fetchone()
    except psycopg.errors.UndefinedTable:
        return None  # never written to: reading creates nothing


def _state_from_row(row: Any) -> State:
    version, stamp, materializations, extra, objects = row
    state = empty_state()
    state.update(extra or {})
    for kind, name, record in objects or []:
        state.setdefault(kind, {})[name] = record
    state["materializations"] = materializations or {}
    state["version"] = int(version)
    state["last_updated"] = None if stamp is None else stamp.astimezone(timezone.utc).isoformat()
    return state


def _parse_stamp(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def parse_path(path: str) -> tuple[str, str | None, str]:
    """``registry.path`` -> (libpq connection URL, schema or None, address without password)."""
    shown = redact_text(path, path)
    try:
        parts = urlsplit(path.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is no number in 0..65535
    except ValueError:  # that, or a broken [ipv6] host
        raise ConfigError(
            f"registry.path {shown!r}: the port must be a number from 1 to 65535 (and an IPv6 "
            "host is written [::1]); write postgresql://USER:PASSWORD@HOST:PORT/DATABASE, with "
            "special characters in the password %-escaped"
        ) from None
    scheme = parts.scheme.lower().split("+", 1)[0]
    if scheme not in _SCHEMES or not parts.netloc:
        raise ConfigError(
            f"registry.path {shown!r}: the sql registry stores its tables in PostgreSQL; write "
            "registry.path as postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
            "(optionally ?schema=NAME)"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None) or None
    rest = [(k, v) for k, v in query if k != "schema"]
    url = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), ""))
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    address = f"postgresql://{user}{host}{port}{parts.path}"
    if schema:
        address += f" (schema {schema})"
    return url, schema, address


def _password_of(conninfo: str) -> str | None:
    """The password to blank out of messages; None if it also names the user, host or
    database (which messages show anyway)."""
    u = urlsplit(conninfo)
    if not u.password or u.password in (u.username, u.hostname, u.path.lstrip("/")):
        return None
    return u.password
