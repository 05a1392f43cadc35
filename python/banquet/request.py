"""Resolve a feature request (refs or a FeatureService) into per-view groups.

Shared by historical and online retrieval. A resolved request is cached on the catalog it was
resolved against, so repeated online requests do no registry work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from banquet.errors import FeatureNameCollisionError, InvalidFeatureRef
from banquet.feature_service import FeatureService
from banquet.field import Field
from banquet.registry.base import Catalog
from banquet.versions import check_served, split_ref_view


@dataclass
class ViewGroup:
    """The features one (projected) view contributes to a request."""

    view: Any  # FeatureView or OnDemandFeatureView, with its projection
    features: list[Field] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # output column names, same order

    @property
    def is_on_demand(self) -> bool:
        return hasattr(self.view, "udf")


@dataclass
class ResolvedRequest:
    groups: list[ViewGroup]
    columns: list[tuple[int, int]]  # output order: (group index, feature index in the group)
    names: list[str]  # output names, in request order
    # Per on-demand group index: its inputs as (source view's projected name, feature, group
    # index, feature index). Inputs nobody requested are extra features of their group, named
    # "view:feature" (':' is in no output name).
    inputs: dict[int, list[tuple[str, str, int, int]]] = field(default_factory=dict)
    # Built once per resolved request (so once per registry version) by the modules that use
    # them: serving's plan (serving._Plan) and the on-demand groups' (on_demand._GroupPlan).
    online_plan: Any = field(default=None, repr=False, compare=False)
    on_demand_plans: Any = field(default=None, repr=False, compare=False)
    # Entity-row keys an online response echoes, as Feast's: the join keys of the project's
    # entities and of the requested views (after join_key_map); request fields are not
    entity_keys: frozenset[str] = frozenset()

    def join_key_columns(self) -> list[str]:
        """Entity-row columns the request needs, in first-use order."""
        seen: dict[str, None] = {}
        for g in self.groups:
            if not g.is_on_demand:
                for k in g.view.join_keys:
                    seen[g.view.entity_column(k)] = None
        return list(seen)


def resolve(
    catalog: Catalog,
    features: Sequence[str] | FeatureService,
    full_feature_names: bool = False,
) -> ResolvedRequest:
    key = (
        ("service", features.name) if isinstance(features, FeatureService) else tuple(features),
        full_feature_names,
    )
    cache: dict[Any, ResolvedRequest] = catalog.requests
    hit = cache.get(key)
    if hit is None:
        hit = _resolve(catalog, features, full_feature_names)
        if len(cache) > 1024:
            cache.clear()
        cache[key] = hit
    return hit


def _resolve(
    catalog: Catalog, features: Sequence[str] | FeatureService, full: bool
) -> ResolvedRequest:
    groups: list[ViewGroup] = []
    by_name: dict[str, int] = {}
    columns: list[tuple[int, int]] = []

    def group_for(view: Any) -> int:
        name = view.projected_name
        if name not in by_name:
            by_name[name] = len(groups)
            groups.append(ViewGroup(view))
        return by_name[name]

    def add(view: Any, f: Field) -> None:
        gi = group_for(view)
        g = groups[gi]
        g.features.append(f)
        g.names.append(f"{view.projected_name}__{f.name}" if full else f.name)
        columns.append((gi, len(g.features) - 1))

    # view name -> (view, its fields by name): view.feature() scans the list, quadratic for a
    # request naming many features of one wide view
    fields_of: dict[str, tuple[Any, dict[str, Field]]] = {}

    if isinstance(features, FeatureService):
        service = catalog.get("feature_services", features.name)
        for view in service.feature_views:
            for f in view.projected_features:
                add(view, f)
    else:
        if isinstance(features, str):
            features = [features]
        if not features:
            raise InvalidFeatureRef("no features requested; pass refs like ['view:feature']")
        for ref in features:
            parts = ref.split(":") if isinstance(ref, str) else []
            if len(parts) != 2 or not all(parts):
                raise InvalidFeatureRef(
                    f"feature reference {ref!r} is not of the form 'view:feature'"
                )
            view_name, feature = parts
            known = fields_of.get(view_name)
            if known is None:
                base, version = split_ref_view(view_name)  # Feast's 'view@vN' (versions.py)
                view = catalog.view(base)
                check_served(view, version)
                known = fields_of[view_name] = (view, {f.name: f for f in view.features})
            view, fields = known
            f = fields.get(feature)
            add(view, f if f is not None else view.feature(feature))  # feature(): the error
    inputs = {gi: _on_demand_inputs(g, group_for, groups) for gi, g in enumerate(list(groups))}
    names = [groups[gi].names[fi] for gi, fi in columns]
    dup = sorted({n for n, count in Counter(names).items() if count > 1})
    if dup:
        raise FeatureNameCollisionError(
            f"features {dup} would appear more than once in the output (they come from "
            "different feature views); pass full_feature_names=True to name columns "
            "'view__feature', or request only one of them"
        )
    resolved = ResolvedRequest(
        groups, columns, names, {gi: refs for gi, refs in inputs.items() if refs}
    )
    resolved.entity_keys = frozenset(
        [k for e in catalog.entities.values() for k in e.join_keys] + resolved.join_key_columns()
    )
    return resolved


def _on_demand_inputs(
    g: ViewGroup, group_for: Any, groups: list[ViewGroup]
) -> list[tuple[str, str, int, int]]:
    """Make sure the features an on-demand view reads are fetched; say where they are."""
    if not g.is_on_demand:
        return []
    refs = []
    for src in g.view.source_views:
        sgi = group_for(src)
        sg = groups[sgi]
        index: dict[str, int] = {}  # first position of each feature name in the group
        for i, x in enumerate(sg.features):
            index.setdefault(x.name, i)
        for f in src.projected_features:
            fi = index.get(f.name, -1)
            if fi < 0:
                sg.features.append(f)
                sg.names.append(f"{src.projected_name}:{f.name}")
                fi = index[f.name] = len(sg.features) - 1
            refs.append((src.projected_name, f.name, sgi, fi))
    return refs
