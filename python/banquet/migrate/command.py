"""``banquet migrate-from-feast [SOURCE]``: import a Feast registry into this repo's registry.

SOURCE is a Feast file registry (``registry.db``, protobuf) or a Feast SQL registry's URL
(``sqlite:///path`` or ``postgresql://...``); without it, the repo's own registry path (a
Feast ``registry.db`` left there is imported in place: the file registry does that on first
read, keeping the original as ``registry.db.feast``, which is what is re-read here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from banquet.errors import RegistryError
from banquet.migrate.feast_registry import (
    SQL_TABLES,
    Blobs,
    blobs_from_file,
    blobs_from_rows,
    is_feast_registry,
    states,
)
from banquet.registry.base import KINDS, State

if TYPE_CHECKING:
    from banquet.store import FeatureStore


def read_blobs(source: str, repo: Path) -> Blobs:
    """A Feast registry's objects from a file path or a SQL URL."""
    scheme = source.split("://", 1)[0].split("+", 1)[0].lower() if "://" in source else ""
    if scheme == "sqlite":
        rest = source.split("://", 1)[1]
        rest = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel, sqlite:////abs
        return _sql_rows_sqlite(_resolve(rest, repo))
    if scheme in ("postgresql", "postgres"):
        return _sql_rows_postgres(source)
    if scheme:
        raise RegistryError(
            f"migrate-from-feast: {scheme}:// registries are not read; give a registry.db "
            "file, sqlite:///path or postgresql://..."
        )
    path = _resolve(source, repo)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RegistryError(f"migrate-from-feast: cannot read {path}: {e.strerror}") from None
    if not is_feast_registry(raw):
        backup = path.with_name(path.name + ".feast")
        if raw[:1] == b"{" and backup.is_file():  # imported in place already: re-read Feast's
            return blobs_from_file(backup.read_bytes())
        raise RegistryError(
            f"migrate-from-feast: {path} is not a Feast registry (no Registry protobuf "
            "message); give the path of Feast's registry.db"
        )
    return blobs_from_file(raw)


def _resolve(path: str, repo: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else repo / p


def _sql_rows_sqlite(path: Path) -> Blobs:
    if not path.is_file():
        raise RegistryError(f"migrate-from-feast: no SQLite registry at {path}")
    rows: list[tuple[str, str, bytes]] = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, column in SQL_TABLES.items():
            if table in have:
                for project, blob in conn.execute(f"SELECT project_id, {column} FROM {table}"):
                    rows.append((table, project, blob))
    return blobs_from_rows(rows)


def _sql_rows_postgres(url: str) -> Blobs:
    import psycopg

    from banquet.redact import redact_text

    rows: list[tuple[str, str, bytes]] = []
    try:
        with psycopg.connect(
            url.replace("postgresql+psycopg", "postgresql"), connect_timeout=5
        ) as c:
            for table, column in SQL_TABLES.items():
                found = c.execute("SELECT to_regclass(%s)", (table,)).fetchone()
                if found and found[0] is not None:
                    for project, blob in c.execute(f"SELECT project_id, {column} FROM {table}"):
                        rows.append((table, project, bytes(blob)))
    except psycopg.Error as e:
        raise RegistryError(f"migrate-from-feast: {redact_text(str(e), url)}") from None
    return blobs_from_rows(rows)


def import_into(store: FeatureStore, source: str | None) -> dict[str, int]:
    """Record every project of the Feast registry at ``source`` in ``store``'s registry
    (replacing those projects' definitions); returns project -> number of objects."""
    src = source or store.config.registry.path
    imported = states(read_blobs(src, store.config.repo_path))
    counts: dict[str, int] = {}
    for project, state in imported.items():

        def change(current: State, new: State = state) -> bool:
            for kind in KINDS:
                current[kind] = new[kind]
            return True

        store.registry.update(project, change)
        counts[project] = sum(len(state[k]) for k in KINDS)
    store.refresh_registry()
    return counts


def summary(counts: dict[str, Any]) -> str:
    return "; ".join(f"project {p!r}: {n} objects" for p, n in sorted(counts.items()))
