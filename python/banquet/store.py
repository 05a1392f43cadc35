"""``FeatureStore``: the façade users hold. It delegates to the registry, the offline store
and the online store named in ``feature_store.yaml``."""

from __future__ import annotations

import enum
import threading
import time
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from banquet._memory import memory_bound
from banquet.config import RepoConfig, load_config
from banquet.entity import Entity
from banquet.errors import (
    BanquetError,
    ConfigError,
    DefinitionError,
    DefinitionTypeError,
    InvalidArgument,
)
from banquet.feature_service import FeatureService
from banquet.feature_view import FeatureView
from banquet.registry.base import (
    KINDS,
    PENDING_DROPS,
    Catalog,
    Registry,
    State,
    current_storage,
    open_registry,
)
from banquet.repo import Diff, RepoContents, apply_diff, diff, load_repo
from banquet.request import resolve
from banquet.serving import get_online_features as _get_online_features
from banquet.store_feast import FeastSurface, not_supported
from banquet.trust import TrustPolicy

if TYPE_CHECKING:
    from banquet.audit import AuditReport
    from banquet.offline.base import OfflineStore, RetrievalJob
    from banquet.online.base import OnlineStore
    from banquet.serving import OnlineResponse


class PushMode(enum.Enum):
    """Where ``FeatureStore.push`` sends rows."""

    ONLINE = 1
    OFFLINE = 2
    ONLINE_AND_OFFLINE = 3


class FeatureStore(FeastSurface):
    """Entry point: ``FeatureStore(repo_path=".")`` or ``FeatureStore(config=RepoConfig(...))``.
    Every public method and parameter of Feast 0.67's ``FeatureStore`` exists; the ones
    beyond the core are in ``store_feast.py``."""

    def __init__(
        self,
        repo_path: str | Path | None = None,
        config: RepoConfig | None = None,
        fs_yaml_file: str | Path | None = None,
        embedding_provider: Any = None,
    ) -> None:
        if config is not None and (repo_path is not None or fs_yaml_file is not None):
            raise ConfigError(
                "FeatureStore: pass either config= or repo_path=/fs_yaml_file=, not both"
            )
        if config is None:
            config = load_config(repo_path, fs_yaml_file)
        self.config = config
        self.repo_path = config.repo_path
        self._fs_yaml_file = fs_yaml_file
        self._embedding_provider = embedding_provider
        self._registry: Registry = open_registry(config)
        self._trust = TrustPolicy(config)  # which stored on-demand functions may run
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()
        self._online: OnlineStore | None = None
        self._offline: OfflineStore | None = None

    @property
    def project(self) -> str:
        return self.config.project

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def trust_policy(self) -> TrustPolicy:
        """Which stored on-demand functions this store runs (see ``banquet.trust``)."""
        return self._trust

    # --- the registry cache ------------------------------------------------------------

    def catalog(self) -> Catalog:
        """The project's definitions, re-read after ``registry.cache_ttl_seconds``."""
        cat = self._catalog
        ttl = self.config.registry.cache_ttl_seconds
        if cat is None or (ttl > 0 and time.monotonic() - cat.loaded_at > ttl):
            with self._lock:
                cat = self._catalog
                if cat is None or (ttl > 0 and time.monotonic() - cat.loaded_at > ttl):
                    cat = self._catalog = self._reload(cat)
        return cat

    def _reload(self, cat: Catalog | None) -> Catalog:
        """A catalog whose version is still the registry's is kept (with its request cache);
        the SQL registry checks that in one small query."""
        if cat is None:
            return self._new_catalog(self._registry.read(self.project))
        state = self._registry.read_if_changed(
            self.project, cat.version, cat.state.get("last_updated")
        )
        if state is None:
            cat.loaded_at = time.monotonic()
            return cat
        return self._new_catalog(state)

    def _new_catalog(self, state: dict[str, Any]) -> Catalog:
        """A catalog whose stored on-demand functions run only if this store trusts them."""
        cat = Catalog(self.project, state)
        self._trust.bind(cat.on_demand_feature_views.values())
        return cat

    def refresh_registry(self, *, state: dict[str, Any] | None = None) -> None:
        """Re-read the registry now instead of waiting for the cache to expire (or use
        ``state``, a project state the caller has just read)."""
        with self._lock:
            if state is None:
                state = self._registry.read(self.project)
            self._catalog = self._new_catalog(state)

    # --- stores --------------------------------------------------------------------------

    @property
    def online_store(self) -> OnlineStore:
        if self._online is None:
            from banquet.online import open_online_store

            self._online = open_online_store(self.config)
        return self._online

    @property
    def offline_store(self) -> OfflineStore:
        if self._offline is None:
            from banquet.offline import open_offline_store

            self._offline = open_offline_store(self.config)
        return self._offline

    # --- apply / plan / teardown ---------------------------------------------------------

    def plan(
        self,
        desired_repo_contents: RepoContents | Sequence[Any] | None = None,
        skip_feature_view_validation: bool = False,
        progress_ctx: Any = None,
        *,
        partial: bool | None = None,
    ) -> Diff:
        """What ``apply`` would change, writing nothing. Without ``desired_repo_contents``:
        the repo folder (a full sync); with a list of objects: an additive change, as
        ``apply`` does. Feast's ``skip_feature_view_validation`` and ``progress_ctx`` are
        accepted: sources are always checked, there is no progress display. Returns one
        ``Diff`` (Feast: a tuple of registry diff, infra diff, infra)."""
        objects = desired_repo_contents
        if partial is None:
            partial = objects is not None and not isinstance(objects, RepoContents)
        contents = self._contents(objects)
        return diff(contents.records(), self._registry.read(self.project), partial=partial)

    def apply(
        self,
        objects: RepoContents | Sequence[Any] | Any | None = None,
        objects_to_delete: Sequence[Any] | None = None,
        partial: bool = True,
        skip_feature_view_validation: bool = False,
        no_promote: bool = False,
    ) -> Diff:
        """Register definitions and create their online storage.

        ``objects`` may be a list of definitions (added or updated; nothing else is removed
        unless listed in ``objects_to_delete``), or None to sync the whole repo folder
        (objects no longer defined are removed), as ``banquet apply`` does.
        ``skip_feature_view_validation`` and ``no_promote`` (Feast's, for view versions) are
        accepted and change nothing: sources are always checked, nothing is versioned.
        """
        if objects is None:
            partial = False
        contents = self._contents(objects)
        from banquet.online.tiles import check_online_views

        check_online_views(contents.feature_views.values())
        desired = contents.records()
        to_delete = {(_kind(o), o.name) for o in objects_to_delete or []}
        listed = objects is not None and not isinstance(objects, RepoContents)
        if listed and not partial:
            contents.validate()
        result: dict[str, Diff] = {}

        def change(state: dict[str, Any]) -> bool:
            if listed and partial:
                # Validate references against what the registry will hold: what it holds now
                # (under the registry's lock, so no concurrent apply slips in between), plus
                # these objects, minus the deleted ones.
                held = Catalog(self.project, state)
                merged = RepoContents()
                for k in KINDS:
                    getattr(merged, k).update(getattr(held, k))
                for obj in contents.all_objects():
                    getattr(merged, _kind(obj))[obj.name] = obj
                for kind, name in to_delete:
                    getattr(merged, kind).pop(name, None)
                merged.validate()
            d = diff(desired, state, partial=partial)
            for kind, name in to_delete:
                if name in state.get(kind, {}):
                    d.removed.setdefault(kind, []).append(name)
            result["diff"] = d
            if d.empty:
                return False
            apply_diff(state, desired, d)
            self._create_online_storage(d, desired, state)
            return True

        # One registry update records the new definitions, forgets the intervals of reshaped
        # or removed views and lists their old storage as pending drops; only then is any
        # stored row deleted (ARCHITECTURE.md, "Data flow: apply").
        written = self._registry.update(self.project, change)
        self.refresh_registry()
        self._finish_pending_drops(written)
        return result["diff"]

    def _create_online_storage(self, d: Diff, desired: dict[str, Any], state: State) -> None:
        """Create storage for the added and changed online views under the names ``state``
        gives them, before the registry records them (a registered view always has its
        storage). A reshaped view's name is new, so it starts empty."""
        names = d.added.get("feature_views", []) + list(d.changed.get("feature_views", {}))
        views = [self._view_from_record(desired, n) for n in names]
        for v in views:
            if v.online:
                v.storage = current_storage(state, v.name)
                self.online_store.create_view(self.project, v)

    def _finish_pending_drops(self, state: State) -> None:
        """Delete the rows of retired storage names (``state``'s pending drops), then take
        the names off the list. Interrupted, the rows stay unread until the next ``apply``
        (or ``teardown``) deletes them; nothing the registry claims is touched."""
        pending = list(state.get(PENDING_DROPS) or [])
        if not pending:
            return
        try:
            for name in pending:
                self.online_store.drop_view(self.project, name)
        except BanquetError as e:
            warnings.warn(
                f"apply: the registry holds the new definitions, but deleting the retired "
                f"online rows ({', '.join(pending)}) failed: {e}. They are never read; run "
                "`banquet apply` again to delete them",
                stacklevel=3,
            )
            return

        def change(st: State) -> bool:
            left = [n for n in st.get(PENDING_DROPS) or [] if n not in pending]
            if len(left) == len(st.get(PENDING_DROPS) or []):
                return False
            if left:
                st[PENDING_DROPS] = left
            else:
                st.pop(PENDING_DROPS, None)
            return True

        self._registry.update(self.project, change)
        self.refresh_registry()

    def _view_from_record(self, desired: dict[str, Any], name: str) -> FeatureView:
        entities = {n: Entity.from_dict(r) for n, r in desired["entities"].items()}
        entities.update(self.catalog().entities)
        entities.update({n: Entity.from_dict(r) for n, r in desired["entities"].items()})
        return FeatureView.from_dict(desired["feature_views"][name], entities)

    def _contents(self, objects: RepoContents | Sequence[Any] | Any | None) -> RepoContents:
        if objects is None:
            contents = load_repo(self.repo_path)
        elif isinstance(objects, RepoContents):
            contents = objects
        else:
            objs = list(objects) if isinstance(objects, (list, tuple)) else [objects]
            contents = RepoContents()
            for o in objs:
                contents.add(o, "apply()")
        self._check_sources(contents)
        return contents

    def _check_sources(self, contents: RepoContents) -> None:
        """Fill in key types the definitions leave open and check that sources hold the
        declared columns, so mistakes surface at apply rather than at training time."""
        key_types: dict[str, tuple[Any, str]] = {}
        for fv in contents.feature_views.values():
            self.offline_store.check_view(self.config, fv)
            for e in fv.entities:  # an entity's key must have one type wherever it is read
                dtype = fv.key_dtype(e.join_key)
                if dtype is None:
                    continue  # unknown until the source exists (a push source's file)
                first = key_types.setdefault(e.name, (dtype, fv.name))
                if first[0] != dtype:
                    raise DefinitionError(
                        f"entity {e.name!r}: its join key {e.join_key!r} is {first[0]} in feature "
                        f"view {first[1]!r} but {dtype} in feature view {fv.name!r}; make the "
                        "sources' key columns the same type (or declare value_type= on the "
                        "entity and the schema)"
                    )

    def teardown(self) -> None:
        """Delete the project's registry records, then its online data (in that order: an
        interrupted teardown leaves no registry claiming deleted rows; run it again)."""
        state = self._registry.read(self.project)
        names = [current_storage(state, n) for n in state["feature_views"]]
        names += state.get(PENDING_DROPS) or []
        self._registry.delete_project(self.project)
        self.refresh_registry()
        for name in names:
            self.online_store.drop_view(self.project, name)
        self.online_store.teardown(self.project)

    # --- retrieval ----------------------------------------------------------------------

    def get_historical_features(
        self,
        entity_df: Any = None,
        features: Sequence[str] | FeatureService = (),
        full_feature_names: bool = False,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        filter_by_created_timestamp: bool = False,
    ) -> RetrievalJob:
        """A point-in-time correct training set: for every entity row, each feature's latest
        value at or before the row's timestamp (within the view's ttl).

        ``entity_df``: pandas/polars DataFrame, pyarrow Table, anything exporting Arrow, or
        (on the Postgres offline store) a SQL query. Returns a lazy job: call ``to_df()``,
        ``to_arrow()``, ``to_polars()`` or ``to_parquet(path)``. ``start_date``/``end_date``
        only matter to Feast without ``entity_df``, which banquet does not support.
        """
        if entity_df is None:
            not_supported(
                "get_historical_features",
                "retrieval without entity_df (a time range only) is not supported; pass "
                "entity_df with the join keys and event_timestamp",
            )
        if filter_by_created_timestamp:
            not_supported(
                "get_historical_features",
                "filter_by_created_timestamp=True is not supported (created timestamps "
                "only break ties between equal event times)",
            )
        from banquet.request import resolve

        request = resolve(self.catalog(), features, full_feature_names)
        return self.offline_store.historical_job(request, entity_df)

    def get_online_features(
        self,
        features: Sequence[str] | FeatureService,
        entity_rows: Any,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> OnlineResponse:
        """The latest values of ``features`` for ``entity_rows`` (a list of dicts or a dict of
        columns), with a status per value. Values older than the view's ttl come back as
        None with status OUTSIDE_MAX_AGE."""
        if include_feature_view_version_metadata:
            not_supported(
                "get_online_features",
                "include_feature_view_version_metadata=True: feature views have no versions",
            )
        if self.config.online_store.type == "remote":  # a feature server answers (remote.py)
            return self.online_store.get_online_features(  # type: ignore[attr-defined,no-any-return]
                resolve(self.catalog(), features, full_feature_names),
                features,
                entity_rows,
                full_feature_names,
            )
        # imported at module level: an import statement here costs ~2 us per call
        return _get_online_features(
            self, resolve(self.catalog(), features, full_feature_names), entity_rows
        )

    # --- materialization and writes --------------------------------------------------------

    def materialize(
        self,
        start_date: datetime,
        end_date: datetime,
        feature_views: Sequence[str] | None = None,
        disable_event_timestamp: bool = False,
        full_feature_names: bool = False,
        version: str | None = None,
        force: bool = False,
        run_async: bool = False,
        *,
        progress: bool = False,
        overwrite: bool = False,
    ) -> None:
        """Load the latest values with event times in ``[start_date, end_date]`` into the
        online store, then record the interval in the registry. ``overwrite=True``: each
        key's row replaces the stored one even when that one is newer (corrects a value
        written with a wrong, future event time). Feast's ``full_feature_names``, ``force``
        and ``run_async`` change nothing here (as in Feast without a remote server)."""
        from banquet.materialize import Window, materialize_windows, to_us

        _check_materialize_args("materialize", version, disable_event_timestamp)
        start_us, end_us = to_us(start_date), to_us(end_date)
        if start_us > end_us:
            raise InvalidArgument(
                f"materialize: start_date {start_date} is after end_date {end_date}; pass the "
                "earlier time first (materialize START END)"
            )
        windows = [Window(v, start_us, end_us) for v in self._online_views(feature_views)]
        with memory_bound("materialize"):
            materialize_windows(self, windows, progress, overwrite)

    def materialize_incremental(
        self,
        end_date: datetime,
        feature_views: Sequence[str] | None = None,
        full_feature_names: bool = False,
        version: str | None = None,
        force: bool = False,
        run_async: bool = False,
        *,
        progress: bool = False,
    ) -> None:
        """Materialize each view from where its last materialization ended (or, the first
        time, from ``end_date - ttl``, or from the beginning for views without ttl).
        Feast's ``full_feature_names``, ``force`` and ``run_async`` change nothing here."""
        from banquet.materialize import Window, materialize_windows, to_us

        _check_materialize_args("materialize_incremental", version, False)
        end_us = to_us(end_date)
        # Read the intervals fresh, not from the cache: another process may have just run.
        recorded = self._registry.read(self.project)["materializations"]
        windows: list[Window] = []
        for view in self._online_views(feature_views):
            done = recorded.get(view.name, [])
            if done:
                start_us: int | None = max(hi for _, hi in done)
            else:
                start_us = None if view.ttl_us is None else end_us - view.ttl_us
            if start_us is not None and start_us > end_us:
                continue
            windows.append(Window(view, start_us, end_us))
        with memory_bound("materialize_incremental"):
            materialize_windows(self, windows, progress)

    def _online_views(self, names: Sequence[str] | None) -> list[FeatureView]:
        catalog = self.catalog()
        if names is None:
            return [v for v in catalog.feature_views.values() if v.online]
        views = [catalog.get("feature_views", n) for n in names]
        for v in views:
            if not v.online:
                raise InvalidArgument(
                    f"feature view {v.name!r} has online=False; it cannot be materialized "
                    "(set online=True in its definition and apply, or leave it out)"
                )
        return views

    def write_to_online_store(
        self,
        feature_view_name: str,
        df: Any = None,
        inputs: Any = None,
        allow_registry_cache: bool = True,
        transform_on_write: bool = True,
        *,
        overwrite: bool = False,
    ) -> None:
        """Write rows (join keys, the timestamp field, features) straight to the online store.
        The whole frame is checked against the view's schema and the write checks (keys,
        event times, value ranges) before anything is written. ``overwrite=True``: each
        key's row replaces the stored one even when that one is newer. ``inputs`` (Feast's):
        the rows as a dict of columns or a frame, when ``df`` is None. ``transform_on_write``
        changes nothing: feature views have no write-time transformation."""
        from banquet.push import write_online

        if df is None:
            df = inputs
        if df is None:
            raise InvalidArgument(
                f"write_to_online_store({feature_view_name!r}): pass the rows as df= (or inputs=)"
            )
        view = self.get_feature_view(feature_view_name, allow_registry_cache)
        with memory_bound(f"write_to_online_store ({feature_view_name!r})"):
            write_online(self, view, df, overwrite)

    def push(
        self,
        push_source_name: str,
        df: Any,
        allow_registry_cache: bool | PushMode = True,
        to: PushMode = PushMode.ONLINE,
        transform_on_write: bool = True,
        *,
        overwrite: bool = False,
    ) -> None:
        """Send rows to every view fed by the push source: to the online store, to the batch
        source (offline), or both. ``overwrite=True``: online, each key's row replaces the
        stored one even when that one is newer. Feast's parameter order; a ``PushMode``
        passed third (banquet's earlier order) still means ``to``. ``transform_on_write``
        changes nothing: feature views have no write-time transformation."""
        from banquet.push import push

        if isinstance(allow_registry_cache, PushMode):
            to = allow_registry_cache
        elif not allow_registry_cache:
            self._catalog_for(False)  # Feast re-reads the registry first
        with memory_bound(f"push ({push_source_name!r})"):
            push(self, push_source_name, df, to, overwrite)

    def audit(
        self,
        sample: int = 100,
        views: Sequence[str] | None = None,
        seed: int | None = 0,
        strict: bool = False,
    ) -> AuditReport:
        """Compare a sample of keys per online view between the online store and the offline
        point-in-time values at the view's materialization watermark; every difference comes
        back with its key, feature, both values and a reason (``banquet.audit``)."""
        from banquet.audit import audit

        return audit(self, sample, list(views) if views else None, seed, strict)

    def registry_dump(self) -> dict[str, Any]:
        """The project's registry records as JSON-able data."""
        state = self._registry.read(self.project)
        return {"project": self.project, **state}

    def __repr__(self) -> str:
        return f"FeatureStore(project={self.project!r}, repo_path={str(self.repo_path)!r})"


def _kind(obj: Any) -> str:
    from banquet.repo import kind_of

    kind = kind_of(obj)
    if kind is None:
        raise DefinitionTypeError(
            f"{obj!r} is not a banquet definition; pass Entity, FeatureView, "
            "OnDemandFeatureView, FeatureService or data source objects"
        )
    return kind


def _check_materialize_args(
    method: str, version: str | None, disable_event_timestamp: bool
) -> None:
    if version is not None:
        not_supported(method, f"version={version!r}: feature views have no versions")
    if disable_event_timestamp:
        not_supported(
            method,
            "disable_event_timestamp=True (storing every row with the current time) is not "
            "supported: the newest event per key is stored with its own time",
        )
