"""The rest of Feast 0.67's ``FeatureStore`` surface, as a mixin of ``banquet.FeatureStore``.

Listing and lookup honour Feast's cache flags (``allow_cache=False``, Feast's default for
lookups, re-reads the registry when it changed); the methods that need a service banquet
does not have raise ``NotSupportedError`` naming the method and why (README, "Switching
from Feast"). The core methods (apply, retrieval, materialize, push) live in ``store.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from banquet.errors import (
    FeatureViewNotFound,
    NotSupportedAttribute,
    OnDemandFeatureViewNotFound,
    PermissionNotFound,
    ProjectNotFound,
    SavedDatasetNotFound,
    SchemaMismatch,
    ValidationReferenceNotFound,
)
from banquet.errors import NotSupportedError as NotSupportedError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from pathlib import Path

    from banquet.config import RepoConfig
    from banquet.entity import Entity
    from banquet.feature_service import FeatureService
    from banquet.feature_view import FeatureView
    from banquet.offline.base import OfflineStore
    from banquet.online.base import OnlineStore
    from banquet.registry.base import Catalog, Registry
    from banquet.serving import OnlineResponse
    from banquet.sources import DataSource
    from banquet.store import PushMode


def not_supported(method: str, why: str) -> NoReturn:
    raise NotSupportedError(f"FeatureStore.{method}: {why}")


@dataclass(frozen=True)
class ProjectInfo:
    """A project as ``list_projects`` / ``get_project`` return it (Feast's ``Project`` has
    the same attributes)."""

    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


class FeastSurface:
    """Feast's ``FeatureStore`` methods beyond banquet's core (mixed into FeatureStore)."""

    _embedding_provider: Any = None
    if TYPE_CHECKING:  # provided by FeatureStore (store.py)
        config: RepoConfig
        _lock: threading.Lock
        _catalog: Catalog | None
        _online: OnlineStore | None
        _fs_yaml_file: str | Path | None
        apply: Callable[..., Any]
        teardown: Callable[[], None]
        push: Callable[..., None]
        write_to_online_store: Callable[..., None]
        get_online_features: Callable[..., OnlineResponse]

        @property
        def project(self) -> str: ...
        @property
        def registry(self) -> Registry: ...
        @property
        def online_store(self) -> OnlineStore: ...
        @property
        def offline_store(self) -> OfflineStore: ...
        def catalog(self) -> Catalog: ...
        def _reload(self, cat: Catalog | None) -> Catalog: ...

    _current_project: contextvars.ContextVar[str | None] = contextvars.ContextVar(
        "banquet_current_project", default=None
    )

    # --- properties Feast has --------------------------------------------------------------

    @property
    def mlflow(self) -> Any:
        """Feast's MLflow client; None, as in Feast when the integration is not enabled."""
        return None

    @property
    def openlineage_emitter(self) -> Any:
        """Feast's OpenLineage emitter; None, as in Feast when lineage is not configured."""
        return None

    @property
    def embedding_provider(self) -> Any:
        return self._embedding_provider

    @embedding_provider.setter
    def embedding_provider(self, provider: Any) -> None:
        self._embedding_provider = provider

    @property
    def provider(self) -> NoReturn:
        raise NotSupportedAttribute(
            "FeatureStore.provider: banquet has no provider layer; use store.online_store / "
            "store.offline_store"
        )

    def set_current_project(self, project: str | None) -> contextvars.Token[Any]:
        """Feast switches the project per context; a banquet store serves the project of its
        config, so only that one (or None) may be set."""
        if project is not None and project != self.config.project:
            not_supported(
                "set_current_project",
                f"a store serves the project of its config ({self.config.project!r}), not "
                f"{project!r}; open FeatureStore(config=dataclasses.replace(config, "
                "project=...)) for another project",
            )
        return self._current_project.set(project)

    def reset_current_project(self, token: contextvars.Token[Any]) -> None:
        self._current_project.reset(token)

    # --- the registry, with Feast's cache flags ---------------------------------------------

    def _catalog_for(self, allow_cache: bool) -> Catalog:
        """The cached catalog, or (``allow_cache=False``) one checked against the registry
        now, as Feast reads its registry again for such calls."""
        if allow_cache:
            return self.catalog()
        with self._lock:
            cat = self._catalog = self._reload(self._catalog)
        return cat

    def list_entities(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[Entity]:
        return _tagged(self._catalog_for(allow_cache).entities.values(), tags)

    def list_feature_views(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[FeatureView]:
        return _tagged(self._catalog_for(allow_cache).feature_views.values(), tags)

    def list_batch_feature_views(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[FeatureView]:
        """Feast's batch feature views are its plain feature views: the same list."""
        return self.list_feature_views(allow_cache, tags)

    def list_stream_feature_views(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[Any]:
        """Always empty: banquet has no stream feature views (Kafka/Kinesis sources)."""
        return []

    def list_on_demand_feature_views(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[Any]:
        return _tagged(self._catalog_for(allow_cache).on_demand_feature_views.values(), tags)

    def list_all_feature_views(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[Any]:
        """Feature views, then on-demand feature views (Feast's order)."""
        cat = self._catalog_for(allow_cache)
        return _tagged(cat.feature_views.values(), tags) + _tagged(
            cat.on_demand_feature_views.values(), tags
        )

    def list_label_views(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[Any]:
        return _tagged(getattr(self._catalog_for(allow_cache), "label_views", {}).values(), tags)

    def list_feature_services(self, tags: dict[str, str] | None = None) -> list[FeatureService]:
        return _tagged(self._catalog_for(False).feature_services.values(), tags)

    def list_data_sources(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[DataSource]:
        return _tagged(self._catalog_for(allow_cache).data_sources.values(), tags)

    def get_entity(self, name: str, allow_registry_cache: bool = False) -> Entity:
        return self._catalog_for(allow_registry_cache).get("entities", name)  # type: ignore[no-any-return]

    def get_feature_view(self, name: str, allow_registry_cache: bool = False) -> FeatureView:
        return self._catalog_for(allow_registry_cache).get("feature_views", name)  # type: ignore[no-any-return]

    def get_on_demand_feature_view(self, name: str, allow_registry_cache: bool = False) -> Any:
        views = self._catalog_for(allow_registry_cache).on_demand_feature_views
        if name not in views:
            raise OnDemandFeatureViewNotFound(
                f"on-demand feature view {name!r} is not registered in project "
                f"{self.project!r} (registered: {', '.join(sorted(views)) or 'none'}); check "
                "the name or run `banquet apply`"
            )
        return views[name]

    def get_stream_feature_view(self, name: str, allow_registry_cache: bool = False) -> NoReturn:
        raise FeatureViewNotFound(
            f"stream feature view {name!r} is not registered in project {self.project!r}: "
            "banquet has no stream feature views (use a PushSource and push())"
        )

    def get_label_view(self, name: str, allow_registry_cache: bool = False) -> Any:
        views = getattr(self._catalog_for(allow_registry_cache), "label_views", {})
        if name not in views:
            raise FeatureViewNotFound(
                f"label view {name!r} is not registered in project {self.project!r} "
                f"(registered: {', '.join(sorted(views)) or 'none'})"
            )
        return views[name]

    def get_feature_service(self, name: str, allow_cache: bool = False) -> FeatureService:
        return self._catalog_for(allow_cache).get("feature_services", name)  # type: ignore[no-any-return]

    def get_data_source(self, name: str) -> DataSource:
        return self._catalog_for(False).get("data_sources", name)  # type: ignore[no-any-return]

    def list_feature_view_versions(self, name: str) -> list[dict[str, Any]]:
        not_supported(
            "list_feature_view_versions",
            "banquet keeps no version history of feature views (each apply replaces the "
            "definition)",
        )

    # --- deleting and lifecycle ----------------------------------------------------------------

    def delete_feature_view(self, name: str) -> None:
        """Remove a feature view (or on-demand view) from the registry, then its online rows
        (Feast leaves the rows behind; banquet drops what no definition reads)."""
        cat = self._catalog_for(False)
        view = cat.on_demand_feature_views.get(name) or cat.get("feature_views", name)
        self.apply([], objects_to_delete=[view])

    def delete_feature_service(self, name: str) -> None:
        self.apply([], objects_to_delete=[self.get_feature_service(name)])

    def enable_feature_view(self, name: str) -> NoReturn:
        not_supported("enable_feature_view", _NO_LIFECYCLE)

    def disable_feature_view(self, name: str) -> NoReturn:
        not_supported("disable_feature_view", _NO_LIFECYCLE)

    def set_feature_view_state(self, name: str, state: Any) -> NoReturn:
        not_supported("set_feature_view_state", _NO_LIFECYCLE)

    # --- saved datasets and validation ----------------------------------------------------------

    def create_saved_dataset(
        self,
        from_: Any,
        name: str,
        storage: Any,
        tags: dict[str, str] | None = None,
        feature_service: Any = None,
        allow_overwrite: bool = False,
    ) -> NoReturn:
        not_supported("create_saved_dataset", _NO_DATASETS)

    def create_dataset_from_retrieval(
        self,
        name: str,
        entity_df: Any,
        features: Any,
        storage: Any,
        tags: dict[str, str] | None = None,
        allow_overwrite: bool = False,
    ) -> NoReturn:
        not_supported("create_dataset_from_retrieval", _NO_DATASETS)

    def retrieve_dataset_data(self, name: str, limit: int = 10) -> NoReturn:
        raise SavedDatasetNotFound(f"saved dataset {name!r}: {_NO_DATASETS}")

    def get_saved_dataset(self, name: str) -> NoReturn:
        raise SavedDatasetNotFound(f"saved dataset {name!r}: {_NO_DATASETS}")

    def list_saved_datasets(
        self,
        allow_cache: bool = False,
        tags: dict[str, str] | None = None,
        namespace: str | None = None,
        collection: str | None = None,
    ) -> list[Any]:
        """Always empty: banquet stores no saved datasets."""
        return []

    def get_validation_reference(self, name: str, allow_cache: bool = False) -> NoReturn:
        raise ValidationReferenceNotFound(
            f"validation reference {name!r}: banquet stores no validation references"
        )

    def list_validation_references(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[Any]:
        return []

    def validate_logged_features(
        self,
        source: Any,
        start: Any,
        end: Any,
        reference: Any,
        throw_exception: bool = True,
        cache_profile: bool = True,
    ) -> NoReturn:
        not_supported(
            "validate_logged_features",
            "data-quality validation (Feast's great_expectations profiles) is not implemented",
        )

    def write_logged_features(self, logs: Any, source: Any) -> NoReturn:
        not_supported(
            "write_logged_features",
            "feature logging to the offline store is not implemented; log served features "
            "from your application",
        )

    # --- permissions and projects -------------------------------------------------------------

    def list_permissions(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[Any]:
        """Always empty: banquet's registry holds no permissions (the feature server's
        `auth` tokens are configured in feature_store.yaml)."""
        return []

    def get_permission(self, name: str) -> NoReturn:
        raise PermissionNotFound(
            f"permission {name!r}: banquet's registry holds no permissions (the feature "
            "server's tokens are set under feature_server in feature_store.yaml)"
        )

    def list_projects(
        self, allow_cache: bool = False, tags: dict[str, str] | None = None
    ) -> list[ProjectInfo]:
        projects = [ProjectInfo(name) for name in sorted(self.registry.projects())]
        return _tagged(projects, tags)

    def get_project(self, name: str | None) -> ProjectInfo:
        """``name`` None: the store's project."""
        name = self.project if name is None else name
        if name not in self.registry.projects():
            raise ProjectNotFound(
                f"project {name!r} is not in the registry (projects: "
                f"{', '.join(sorted(self.registry.projects())) or 'none'})"
            )
        return ProjectInfo(name)

    def delete_project(self, name: str, commit: bool = True) -> None:
        """Delete a project's registry records, then its online data (as ``teardown``;
        Feast deletes only the records). ``commit`` is accepted: every change commits."""
        from dataclasses import replace

        from banquet.store import FeatureStore as Store

        self.get_project(name)
        if name == self.project:
            self.teardown()
        else:
            Store(config=replace(self.config, project=name)).teardown()

    # --- writes and reads Feast has in more forms ---------------------------------------------

    async def push_async(
        self,
        push_source_name: str,
        df: Any,
        allow_registry_cache: bool = True,
        to: PushMode | None = None,
        **kwargs: Any,
    ) -> None:
        """``push`` on a worker thread (the event loop keeps running)."""
        from banquet.store import PushMode

        mode = PushMode.ONLINE if to is None else to
        await asyncio.to_thread(
            lambda: self.push(push_source_name, df, allow_registry_cache, mode, **kwargs)
        )

    async def write_to_online_store_async(
        self,
        feature_view_name: str,
        df: Any = None,
        inputs: Any = None,
        allow_registry_cache: bool = True,
    ) -> None:
        await asyncio.to_thread(
            self.write_to_online_store, feature_view_name, df, inputs, allow_registry_cache
        )

    async def get_online_features_async(
        self,
        features: Any,
        entity_rows: Any,
        full_feature_names: bool = False,
        include_feature_view_version_metadata: bool = False,
    ) -> OnlineResponse:
        """``get_online_features`` on a worker thread (its store I/O runs with the GIL
        released, so other coroutines keep running)."""
        return await asyncio.to_thread(
            self.get_online_features,
            features,
            entity_rows,
            full_feature_names,
            include_feature_view_version_metadata,
        )

    async def update_online_store(
        self,
        feature_view_name: str,
        df: Any,
        update_expressions: dict[str, str],
        allow_registry_cache: bool = True,
    ) -> NoReturn:
        not_supported(
            "update_online_store",
            "update expressions are DynamoDB-only in Feast; write whole values with "
            "write_to_online_store",
        )

    def write_to_offline_store(
        self,
        feature_view_name: str,
        df: Any,
        allow_registry_cache: bool = True,
        reorder_columns: bool = True,
    ) -> None:
        """Append rows to the view's batch source. The frame's columns must be the source's
        (in any order when ``reorder_columns``); the rows pass the write checks first."""
        from banquet.entity_data import to_table
        from banquet.push import Prepared
        from banquet.write_checks import max_future_skew_us

        view = self.get_feature_view(feature_view_name, allow_registry_cache)
        source = view.batch_source
        table = to_table(df, "df")
        schema = self.offline_store.source_schema(source)
        if schema is not None:
            missing = sorted(set(schema.names) - set(table.column_names))
            extra = sorted(set(table.column_names) - set(schema.names))
            if missing or extra:
                raise SchemaMismatch(
                    f"write_to_offline_store({feature_view_name!r}): the frame's columns do "
                    f"not match source {source.name!r}: missing {missing}, unexpected {extra}"
                )
            if table.column_names != schema.names:
                if not reorder_columns:
                    raise SchemaMismatch(
                        f"write_to_offline_store({feature_view_name!r}): the frame's columns "
                        f"are in another order than source {source.name!r}'s ({schema.names}); "
                        "pass reorder_columns=True"
                    )
                table = table.select(schema.names)
        Prepared(view, table, max_future_skew_us(self.config))  # keys, times, value ranges
        self.offline_store.append(source, table)

    # --- vector search and other servers ------------------------------------------------------

    def retrieve_online_documents(
        self,
        query: Any,
        top_k: int,
        features: list[str],
        distance_metric: str | None = "L2",
    ) -> NoReturn:
        not_supported("retrieve_online_documents", _NO_VECTORS)

    def retrieve_online_documents_v2(
        self,
        features: list[str],
        top_k: int,
        query: list[float] | None = None,
        query_string: str | None = None,
        distance_metric: str | None = "L2",
        query_image_bytes: bytes | None = None,
        query_image_model: str | None = "resnet34",
        combine_with_text: bool = False,
        text_weight: float = 0.5,
        image_weight: float = 0.5,
        combine_strategy: str = "weighted_sum",
        include_feature_view_version_metadata: bool = False,
        filters: Any = None,
    ) -> NoReturn:
        not_supported("retrieve_online_documents_v2", _NO_VECTORS)

    async def openai_search(
        self,
        vector_store_id: str,
        query: str | list[str],
        *,
        vs_id: str | None = None,
        max_num_results: int = 10,
        filters: Any = None,
        ranking_options: dict[str, Any] | None = None,
        rewrite_query: bool | None = None,
        features_to_retrieve: list[str] | None = None,
    ) -> NoReturn:
        not_supported("openai_search", _NO_VECTORS)

    def precompute_feature_service(
        self, feature_service_name: str | None = None, batch_size: int = 1000
    ) -> NoReturn:
        not_supported(
            "precompute_feature_service",
            "banquet keeps no precomputed vectors (an online read of a service is already "
            "one store call for all its views)",
        )

    def get_feature_server_endpoint(self) -> str | None:
        """None, as Feast's local provider: no remote feature server is configured."""
        return None

    def serve(
        self,
        host: str,
        port: int,
        type_: str = "http",
        no_access_log: bool = True,
        workers: int = 1,
        worker_connections: int = 1000,
        max_requests: int = 1000,
        max_requests_jitter: int = 50,
        metrics: bool = False,
        keep_alive_timeout: int = 30,
        tls_key_path: str = "",
        tls_cert_path: str = "",
        registry_ttl_sec: int = 60,
    ) -> None:
        """Run banquet's feature server (Feast's HTTP endpoints) for this repo, blocking.
        The uvicorn tuning arguments (connections, max requests, keep-alive) are accepted and
        left to uvicorn's defaults; the server always exposes /metrics."""
        from banquet.server.run import serve as run

        if type_.lower() != "http":
            raise NotSupportedError(f"FeatureStore.serve: type_ {type_!r}: only 'http' is served")
        if tls_key_path or tls_cert_path:
            not_supported("serve", "TLS is not served; put a TLS-terminating proxy in front")
        yaml = self.config.repo_path / "feature_store.yaml"
        if self._fs_yaml_file is None and not yaml.is_file():
            not_supported("serve", f"the server reads feature_store.yaml and {yaml} does not exist")
        run(
            self.config.repo_path,
            self._fs_yaml_file,
            host=host,
            port=port,
            workers=workers,
            registry_ttl_sec=registry_ttl_sec,
            access_log=not no_access_log,
        )

    def serve_ui(
        self,
        host: str,
        port: int,
        root_path: str = "",
        tls_key_path: str = "",
        tls_cert_path: str = "",
        cors_origins: list[str] | None = None,
    ) -> NoReturn:
        not_supported("serve_ui", "banquet has no web UI")

    def serve_registry(
        self,
        port: int,
        tls_key_path: str = "",
        tls_cert_path: str = "",
        rest_api: bool = False,
        host: str = "::",
    ) -> NoReturn:
        not_supported(
            "serve_registry",
            "banquet has no registry server; share a SQL registry (registry_type: sql)",
        )

    def serve_offline(
        self, host: str, port: int, tls_key_path: str = "", tls_cert_path: str = ""
    ) -> NoReturn:
        not_supported(
            "serve_offline",
            "banquet has no offline (Arrow Flight) server; read the offline store directly",
        )

    def serve_transformations(self, port: int) -> NoReturn:
        not_supported(
            "serve_transformations",
            "on-demand views run in the process that reads them (no transformation server)",
        )

    async def initialize(self) -> None:
        """Open the online store now rather than on the first read."""
        _ = self.online_store

    async def close(self) -> None:
        """Close the online store's connections (the next use reopens them)."""
        if self._online is not None:
            self._online.close()
            self._online = None


_NO_LIFECYCLE = "feature views have no enabled/disabled state; delete_feature_view removes one"
_NO_DATASETS = (
    "saved datasets are not supported; keep get_historical_features(...).to_parquet(path)"
)
_NO_VECTORS = "vector search is not supported (no vector index in banquet's online stores)"


def _tagged(objs: Any, tags: dict[str, str] | None) -> list[Any]:
    out = list(objs)
    if tags:
        out = [o for o in out if all(o.tags.get(k) == v for k, v in tags.items())]
    return sorted(out, key=lambda o: o.name)
