"""The registry interface and the in-memory catalog of one project's definitions.

A registry stores, per project, plain JSON-able records of every object plus bookkeeping
(a version number, the time of the last change, materialized intervals). ``Catalog`` turns
those records into definition objects once per registry version.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from banquet.entity import Entity
from banquet.errors import (
    ConfigError,
    DataSourceNotFound,
    EntityNotFound,
    FeatureServiceNotFound,
    FeatureViewNotFound,
    NotFoundError,
    RegistryCorrupt,
)
from banquet.feature_service import FeatureService
from banquet.feature_view import FeatureView
from banquet.sources import DataSource

if TYPE_CHECKING:
    from banquet.config import RepoConfig

KINDS = ("entities", "data_sources", "feature_views", "on_demand_feature_views", "feature_services")
State = dict[str, Any]


# Online storage generations (see ARCHITECTURE.md, "Data flow: apply"). A view's online rows
# live under a storage name: the view's name, or ``<name>@<n>`` once an apply retired its
# earlier storage (a schema change, online switched, the view removed). ``@`` cannot occur in
# a name, so these never collide, and ``n`` only grows: a name is never used twice in a
# project, so a late drop of a retired name can never delete rows of a later definition.
GENERATIONS = "online_generations"  # view -> n (absent: 0); kept for removed views
PENDING_DROPS = "pending_drops"  # retired storage names whose rows may still exist


def storage_name(view: str, generation: int) -> str:
    return view if generation == 0 else f"{view}@{generation}"


def current_storage(state: State, view: str) -> str:
    """The storage name of ``view`` as ``state`` records it."""
    return storage_name(view, (state.get(GENERATIONS) or {}).get(view, 0))


def empty_state() -> State:
    return {
        **{k: {} for k in KINDS},
        "materializations": {},
        "version": 0,
        "last_updated": None,
    }


_REBUILD = (
    "re-run `banquet apply` from the feature repo to rewrite it, or restore the registry from "
    "a backup"
)


def check_state(state: State, project: str) -> State:
    """``state`` if its shape is what banquet writes (each kind a mapping of name -> record
    object, materializations ``view -> [[start_us, end_us], ...]``, an integer version), else
    ``RegistryCorrupt`` naming the project and the broken entry: a hand-edited or damaged
    registry must not surface as a ``TypeError`` from deep inside."""

    def corrupt(what: str) -> RegistryCorrupt:
        return RegistryCorrupt(f"registry project {project!r}: {what}; {_REBUILD}")

    for kind in KINDS:
        records = state.get(kind)
        if not isinstance(records, dict):
            raise corrupt(f"{kind!r} is a {type(records).__name__}, expected a mapping")
        for name, record in records.items():
            if not isinstance(record, dict):
                raise corrupt(
                    f"the record of {kind} {name!r} is a {type(record).__name__}, expected an "
                    "object"
                )
    done = state.get("materializations")
    if not isinstance(done, dict):
        raise corrupt(f"'materializations' is a {type(done).__name__}, expected a mapping")
    for view, intervals in done.items():
        ok = isinstance(intervals, list) and all(
            isinstance(iv, list)
            and len(iv) == 2
            and all(isinstance(t, int) and not isinstance(t, bool) for t in iv)
            for iv in intervals
        )
        if not ok:
            raise corrupt(
                f"the materialized intervals of {view!r} are {intervals!r}, expected a list "
                "of [start_us, end_us] pairs"
            )
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise corrupt(f"the version is {version!r}, expected an integer")
    return state


def _build(project: str, kind: str, name: str, build: Callable[[], Any]) -> Any:
    """One definition object from its record; a record that lacks a field or holds a value
    of the wrong type is ``RegistryCorrupt`` naming the object (not a raw ``KeyError`` or
    ``TypeError``)."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        label = "entity" if kind == "entities" else kind[:-1].replace("_", " ")
        detail = f"missing field {e}" if type(e) is KeyError else str(e)
        raise RegistryCorrupt(
            f"registry project {project!r}: the record of {label} {name!r} is malformed "
            f"({type(e).__name__}: {detail}); {_REBUILD}"
        ) from e


class Registry(abc.ABC):
    """Stores project states. Implementations make ``update`` atomic across processes."""

    @abc.abstractmethod
    def read(self, project: str) -> State:
        """The project's current state (an empty one if the project has never been applied)."""

    def read_if_changed(self, project: str, version: int, last_updated: str | None) -> State | None:
        """The project's state, or None when its ``version`` and ``last_updated`` are still
        the given ones (the caller's copy is current). The SQL registry answers that without
        fetching any object; this default reads everything and compares."""
        state = self.read(project)
        if state["version"] == version and state["last_updated"] == last_updated:
            return None
        return state

    @abc.abstractmethod
    def update(self, project: str, change: Callable[[State], bool]) -> State:
        """Read the state, let ``change`` edit it in place, and write it back atomically with
        no other writer in between. ``change`` returns False when it changed nothing (then
        nothing is written). Returns the state as written."""

    @abc.abstractmethod
    def delete_project(self, project: str) -> None:
        """Remove everything recorded for ``project``."""

    @abc.abstractmethod
    def projects(self) -> list[str]: ...

    @staticmethod
    def stamp(state: State) -> None:
        """Bump the version and the last-change time; called by implementations on write."""
        state["version"] = int(state.get("version", 0)) + 1
        state["last_updated"] = datetime.now(timezone.utc).isoformat()


def open_registry(config: RepoConfig) -> Registry:
    reg = config.registry
    if reg.registry_type == "sql":
        from banquet.registry.sql import SqlRegistry

        return SqlRegistry(reg.path)
    if reg.path.split("+", 1)[0].split("://", 1)[0].lower() in ("postgresql", "postgres"):
        raise ConfigError(
            "registry.path is a database URL but registry.registry_type is 'file'; add "
            "`registry_type: sql` under `registry:` in feature_store.yaml"
        )
    from banquet.registry.file import FileRegistry

    return FileRegistry(config.resolve(reg.path))


class Catalog:
    """One project's definitions as objects, built from a registry state."""

    def __init__(self, project: str, state: State) -> None:
        self.project = project
        self.state = state
        self.version: int = state.get("version", 0)
        self.loaded_at = time.monotonic()
        # request.resolve's cache: feature refs -> ResolvedRequest (valid for this version)
        self.requests: dict[Any, Any] = {}
        check_state(state, project)

        def objects(kind: str, build: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
            return {
                n: _build(project, kind, n, lambda d=d: build(d))  # type: ignore[misc]
                for n, d in state[kind].items()
            }

        self.entities = objects("entities", Entity.from_dict)
        self.data_sources = objects("data_sources", DataSource.from_dict)
        self.feature_views = objects(
            "feature_views", lambda d: FeatureView.from_dict(d, self.entities)
        )
        for n, gen in (state.get(GENERATIONS) or {}).items():
            if gen and n in self.feature_views:
                self.feature_views[n].storage = storage_name(n, gen)
        self.on_demand_feature_views: dict[str, Any] = {}
        if state.get("on_demand_feature_views"):
            from banquet.on_demand import OnDemandFeatureView

            self.on_demand_feature_views = objects(
                "on_demand_feature_views",
                lambda d: OnDemandFeatureView.from_dict(d, self.feature_views),
            )
        views: dict[str, Any] = {**self.feature_views, **self.on_demand_feature_views}
        self.feature_services = objects(
            "feature_services", lambda d: FeatureService.from_dict(d, views)
        )

    def materializations(self, view: str) -> list[tuple[int, int]]:
        return [tuple(iv) for iv in self.state["materializations"].get(view, [])]

    def get(self, kind: str, name: str) -> Any:
        table: dict[str, Any] = getattr(self, kind)
        if name in table:
            return table[name]
        error: type[NotFoundError] = _NOT_FOUND[kind]
        label = kind[:-1].replace("_", " ") if kind != "entities" else "entity"
        known = ", ".join(sorted(table)) or "none"
        raise error(
            f"{label} {name!r} is not registered in project {self.project!r} "
            f"(registered: {known}); check the name or run `banquet apply`"
        )

    def view(self, name: str) -> Any:
        """A feature view or on-demand feature view by name."""
        if name in self.on_demand_feature_views:
            return self.on_demand_feature_views[name]
        return self.get("feature_views", name)


_NOT_FOUND: dict[str, type[NotFoundError]] = {
    "entities": EntityNotFound,
    "data_sources": DataSourceNotFound,
    "feature_views": FeatureViewNotFound,
    "on_demand_feature_views": FeatureViewNotFound,
    "feature_services": FeatureServiceNotFound,
}
