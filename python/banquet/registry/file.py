"""The embedded registry: one JSON file, written atomically under an exclusive lock.

Writers take ``flock`` on ``<path>.lock``, read the file, change it, write a temp file in the
same folder, fsync it, rename it over the old one and fsync the folder. A crash at any point
leaves either the old or the new file, never a torn one; two concurrent applies run one
after the other, each on the other's result.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from banquet.errors import RegistryCorrupt, RegistryError
from banquet.registry.base import Registry, State, check_state, empty_state

FORMAT = "banquet-registry/1"


class FileRegistry(Registry):
    _held = False  # this object holds the file lock (update): an import must not re-take it

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- reading -----------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"format": FORMAT, "projects": {}}
        except OSError as e:
            raise RegistryError(f"cannot read registry {self.path}: {e}") from None
        if raw[:1] != b"{" and _is_feast(raw):  # Feast's registry.db: import it once
            return self._import_feast()
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise RegistryCorrupt(
                f"registry {self.path} is not valid JSON ({e}); restore it from a backup or "
                "delete it and run `banquet apply` again"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise RegistryCorrupt(
                f"registry {self.path} is not a banquet registry (format {found!r}, "
                f"expected {FORMAT!r})"
            )
        if not isinstance(doc.get("projects"), dict):
            raise RegistryCorrupt(
                f"registry {self.path} has no 'projects' mapping; restore it from a backup or "
                "delete it and run `banquet apply` again"
            )
        return doc

    def _import_feast(self) -> dict[str, Any]:
        """Feast's protobuf registry -> banquet's (migrate/feast_registry.py): the original is
        kept as ``<path>.feast``; under the lock, so one process imports it."""
        from banquet.migrate import blobs_from_file, states

        with contextlib.ExitStack() as stack:
            if not self._held:
                stack.enter_context(self._locked())
            raw = self.path.read_bytes()
            if raw[:1] == b"{":  # another process imported it meanwhile
                return self._load()
            doc = {"format": FORMAT, "projects": states(blobs_from_file(raw))}
            backup = self.path.with_name(self.path.name + ".feast")
            backup.write_bytes(raw)
            self._write(doc)
            return doc

    def read(self, project: str) -> State:
        state = self._load()["projects"].get(project)
        return check_state(_complete(state), project)

    def projects(self) -> list[str]:
        return sorted(self._load()["projects"])

    # --- writing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{self.path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._held = True
            try:
                yield
            finally:
                self._held = False
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, project: str, change: Callable[[State], bool]) -> State:
        with self._locked():
            doc = self._load()
            state = _complete(doc["projects"].get(project))
            if change(state) is False:
                return state
            self.stamp(state)
            doc["projects"][project] = state
            self._write(doc)
            return state

    def delete_project(self, project: str) -> None:
        with self._locked():
            doc = self._load()
            if doc["projects"].pop(project, None) is not None:
                self._write(doc)

    def _write(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise RegistryError(f"cannot write registry {self.path}: {e}") from None
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _is_feast(raw: bytes) -> bool:
    from banquet.migrate.feast_registry import is_feast_registry

    return is_feast_registry(raw)


def _complete(state: State | None) -> State:
    full = empty_state()
    full.update(state or {})
    return full
