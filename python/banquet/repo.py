"""Load a feature repo's definitions and diff them against the registry.

``load_repo`` imports every ``.py`` file of the repo folder (minus ``.banquetignore``
patterns and the usual clutter) and collects the definition objects it finds. ``diff`` compares
what the code defines with what a registry state holds, per kind, by their records.
"""

from __future__ import annotations

import fnmatch
import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from banquet.entity import Entity
from banquet.errors import DefinitionError, DuplicateNameError, RepoError
from banquet.feature_service import FeatureService
from banquet.feature_view import FeatureView
from banquet.on_demand import OnDemandFeatureView
from banquet.registry.base import GENERATIONS, KINDS, PENDING_DROPS, State, storage_name
from banquet.sources import DataSource

ALWAYS_IGNORED = (".*", "__pycache__", "data", "venv", ".venv", "node_modules", "build", "dist")
IGNORE_FILE = ".banquetignore"

LABELS = {
    "entities": "Entities",
    "data_sources": "Data sources",
    "feature_views": "Feature views",
    "on_demand_feature_views": "On-demand feature views",
    "feature_services": "Feature services",
}


@dataclass
class RepoContents:
    """Definitions, by kind and name."""

    entities: dict[str, Entity] = field(default_factory=dict)
    data_sources: dict[str, DataSource] = field(default_factory=dict)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    on_demand_feature_views: dict[str, Any] = field(default_factory=dict)
    feature_services: dict[str, FeatureService] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_objects(cls, objects: list[Any], where: str = "apply()") -> RepoContents:
        contents = cls()
        for obj in objects:
            contents.add(obj, where)
        contents.validate()
        return contents

    def add(self, obj: Any, where: str) -> None:
        kind = kind_of(obj)
        if kind is None:
            return
        table: dict[str, Any] = getattr(self, kind)
        name = obj.name
        if kind in ("feature_views", "on_demand_feature_views") and not obj.projection.is_default():
            obj = obj.without_projection()  # `view[["a"]]` in a module is the view itself
        if name in table:
            if table[name] is obj or table[name].to_dict() == obj.to_dict():
                return  # the same definition seen again (e.g. imported by another file)
            first = self.origin.get((kind, name), "?")
            raise DuplicateNameError(
                f"two different {LABELS[kind].lower()} are named {name!r} ({first} and {where}); "
                "rename one of them"
            )
        table[name] = obj
        self.origin[(kind, name)] = where
        if kind == "feature_views":  # a view's source is registered with it (not its entities)
            self.add(obj.source, where)
        if kind == "on_demand_feature_views":  # and so are request sources (not source views)
            for src in obj.request_sources:
                self.add(src, where)

    def validate(self) -> None:
        """Cross-object checks: references resolve, names do not collide."""
        join_keys = {e.join_key: e.name for e in self.entities.values()}
        for fv in self.feature_views.values():
            for e in fv.entities:
                defined = self.entities.get(e.name)
                # A view records its entities by name: what must agree is the key they read.
                if defined is None or (defined.join_key, defined.dtype) != (e.join_key, e.dtype):
                    raise DefinitionError(
                        f"FeatureView {fv.name!r} uses entity {e.name!r}, which is not defined "
                        "in the repo (or is defined differently)"
                    )
            for f in fv.features:
                if f.name in join_keys:
                    raise DefinitionError(
                        f"FeatureView {fv.name!r}: feature {f.name!r} has the name of entity "
                        f"{join_keys[f.name]!r}'s join key; rename the feature (field_mapping "
                        "on the source can rename the column)"
                    )
        for odfv in self.on_demand_feature_views.values():
            if odfv.name in self.feature_views:
                raise DuplicateNameError(
                    f"a feature view and an on-demand feature view are both named "
                    f"{odfv.name!r}; rename one of them"
                )
            for src in odfv.source_views:
                have_fv = self.feature_views.get(src.name)
                if have_fv is None:
                    raise DefinitionError(
                        f"OnDemandFeatureView {odfv.name!r} reads feature view {src.name!r}, "
                        "which is not defined in the repo"
                    )
                have = {f.name for f in have_fv.features}
                missing = [f.name for f in src.projected_features if f.name not in have]
                if missing:
                    raise DefinitionError(
                        f"OnDemandFeatureView {odfv.name!r} reads feature {missing[0]!r} of "
                        f"feature view {src.name!r}, which the view does not define (it has "
                        f"{sorted(have)})"
                    )
        views = {**self.feature_views, **self.on_demand_feature_views}
        for fs in self.feature_services.values():
            for v in fs.feature_views:
                if v.name not in views:
                    raise DefinitionError(
                        f"FeatureService {fs.name!r} uses feature view {v.name!r}, which is not "
                        "defined in the repo"
                    )
                have = {f.name for f in getattr(views[v.name], "features", [])}
                missing = [n for n in v.projection.features or [] if have and n not in have]
                if missing:
                    raise DefinitionError(
                        f"FeatureService {fs.name!r} uses feature {missing[0]!r} of feature view "
                        f"{v.name!r}, which the view does not define (it has {sorted(have)})"
                    )

    def records(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {k: {n: o.to_dict() for n, o in getattr(self, k).items()} for k in KINDS}

    def all_objects(self) -> list[Any]:
        return [o for k in KINDS for o in getattr(self, k).values()]


def kind_of(obj: Any) -> str | None:
    if isinstance(obj, OnDemandFeatureView):
        return "on_demand_feature_views"
    if isinstance(obj, Entity):
        return "entities"
    if isinstance(obj, FeatureView):
        return "feature_views"
    if isinstance(obj, FeatureService):
        return "feature_services"
    if isinstance(obj, DataSource):
        return "data_sources"
    return None


def repo_files(repo: Path) -> list[Path]:
    patterns = list(ALWAYS_IGNORED)
    ignore = repo / IGNORE_FILE
    if ignore.is_file():
        patterns += [
            ln.strip().rstrip("/")
            for ln in ignore.read_text().splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ]

    def ignored(rel: Path) -> bool:
        parts = rel.parts
        for pat in patterns:
            if fnmatch.fnmatch(rel.as_posix(), pat) or any(fnmatch.fnmatch(p, pat) for p in parts):
                return True
        return False

    return sorted(p for p in repo.rglob("*.py") if not ignored(p.relative_to(repo)))


def load_repo(repo_path: str | Path) -> RepoContents:
    """Import the repo's definition files and collect their objects."""
    repo = Path(repo_path).resolve()
    files = repo_files(repo)
    # Forget modules from an earlier load of this repo or of another one (which may have the
    # same module names, e.g. both have a `features.py`).
    for name in list(sys.modules):
        if name in _loaded_modules or _module_in(sys.modules[name], repo):
            del sys.modules[name]
    _loaded_modules.clear()
    importlib.invalidate_caches()  # files created since the last import must be found
    contents = RepoContents()
    sys.path.insert(0, str(repo))
    write_bytecode = sys.dont_write_bytecode
    # No .pyc files: they would litter the repo, and one written in the same second as an
    # edit that keeps the file's size would hide the edit from the next load.
    sys.dont_write_bytecode = True
    try:
        for path in files:
            rel = path.relative_to(repo)
            module_name = ".".join(rel.with_suffix("").parts)
            try:
                module = importlib.import_module(module_name)
            except (DefinitionError, DuplicateNameError) as e:
                raise type(e)(f"{rel}: {e}") from None
            except Exception as e:
                raise RepoError(f"{rel}: importing it failed with {type(e).__name__}: {e}") from e
            for value in vars(module).values():
                contents.add(value, str(rel))
    finally:
        sys.dont_write_bytecode = write_bytecode
        sys.path.remove(str(repo))
        _loaded_modules.update(n for n, m in list(sys.modules.items()) if _module_in(m, repo))
    contents.validate()
    return contents


_loaded_modules: set[str] = set()


def _module_in(module: Any, repo: Path) -> bool:
    """Whether ``module`` (or namespace package) was imported from a file under ``repo``."""
    f = getattr(module, "__file__", None)
    places = [f] if f else list(getattr(module, "__path__", None) or [])
    try:
        return any(Path(p).resolve().is_relative_to(repo) for p in places)
    except (TypeError, ValueError, OSError):
        return False


# --- diff ------------------------------------------------------------------------------------


@dataclass
class Diff:
    """Per kind: names added, changed (with the changed top-level fields) and removed."""

    added: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def render(self) -> str:
        if self.empty:
            return "No changes: the registry already matches the repo."
        lines = []
        for kind in KINDS:
            for name in self.added.get(kind, []):
                lines.append(f"  + {LABELS[kind][:-1] if kind != 'entities' else 'Entity'} {name}")
            for name, fields in self.changed.get(kind, {}).items():
                label = LABELS[kind][:-1] if kind != "entities" else "Entity"
                lines.append(f"  ~ {label} {name} ({', '.join(fields)})")
            for name in self.removed.get(kind, []):
                lines.append(f"  - {LABELS[kind][:-1] if kind != 'entities' else 'Entity'} {name}")
        counts = (
            f"{sum(map(len, self.added.values()))} to add, "
            f"{sum(map(len, self.changed.values()))} to change, "
            f"{sum(map(len, self.removed.values()))} to remove"
        )
        return "\n".join([*lines, counts])

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}


def diff(
    desired: dict[str, dict[str, dict[str, Any]]], state: State, *, partial: bool = False
) -> Diff:
    """How ``state`` must change to hold ``desired``. With ``partial`` nothing is removed."""
    d = Diff()
    for kind in KINDS:
        want, have = desired.get(kind, {}), state.get(kind, {})
        added = sorted(set(want) - set(have))
        removed = [] if partial else sorted(set(have) - set(want))
        changed = {
            n: sorted(k for k in set(want[n]) | set(have[n]) if want[n].get(k) != have[n].get(k))
            for n in sorted(set(want) & set(have))
            if want[n] != have[n]
        }
        if added:
            d.added[kind] = added
        if changed:
            d.changed[kind] = changed
        if removed:
            d.removed[kind] = removed
    return d


def _stored_shape(record: dict[str, Any]) -> tuple[Any, ...]:
    """What a view's online rows depend on: the features' names and types (the codec is
    positional), the entities and key columns (the row keys), the source (where the values
    came from) and ``online``. A description or tag changes none of it."""

    def typed(fields: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
        return [(f.get("name"), f.get("dtype")) for f in fields or []]

    def source(d: Any) -> Any:  # a source's (push: and its batch source's) data settings
        if not isinstance(d, dict):
            return d
        return {k: source(v) for k, v in d.items() if k not in _DOCUMENTATION}

    return (
        typed(record.get("features", [])),
        record.get("entities"),
        typed(record.get("entity_columns", [])),
        source(record.get("source")),
        bool(record.get("online")),
        record.get("aggregations"),  # an aggregated view's features and online tiles
    )


_DOCUMENTATION = ("description", "tags", "owner")


def apply_diff(state: State, desired: dict[str, dict[str, dict[str, Any]]], d: Diff) -> None:
    """Edit ``state`` in place so that it holds ``desired`` (as computed by ``diff``).

    A view whose stored values no longer fit (``_stored_shape`` changed, or removed) loses
    its materialized intervals, and its online storage is retired in the same update: the
    name goes to ``PENDING_DROPS`` (deleted after the registry is written, see
    ``FeatureStore.apply``) and the view gets a new storage name, so the registry never claims
    rows that a later drop deletes, and leftover rows are never read or block a write.
    """
    old_views = dict(state.get("feature_views", {}))
    for kind in KINDS:
        table = state.setdefault(kind, {})
        for name in d.added.get(kind, []) + list(d.changed.get(kind, {})):
            table[name] = desired[kind][name]
        for name in d.removed.get(kind, []):
            del table[name]
    retired = list(d.removed.get("feature_views", []))
    for name in d.changed.get("feature_views", {}):
        if _stored_shape(old_views[name]) != _stored_shape(desired["feature_views"][name]):
            retired.append(name)
    gens: dict[str, int] = dict(state.get(GENERATIONS) or {})
    pending: list[str] = list(state.get(PENDING_DROPS) or [])
    for name in retired:
        state["materializations"].pop(name, None)
        if old_views[name].get("online"):
            pending.append(storage_name(name, gens.get(name, 0)))
            # a view removed now and added later must not get the retired name back
            gens[name] = gens.get(name, 0) + 1
    _set_or_drop(state, GENERATIONS, gens)
    _set_or_drop(state, PENDING_DROPS, sorted(set(pending)))


def _set_or_drop(state: State, key: str, value: Any) -> None:
    """Bookkeeping keys are kept only while they hold something (as registries written
    before they existed)."""
    if value:
        state[key] = value
    else:
        state.pop(key, None)
