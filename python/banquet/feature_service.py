"""``FeatureService``: a named list of features a model uses, from one or more views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from banquet._naming import check_name, check_tags, drop_empty
from banquet.errors import DefinitionError
from banquet.feature_view import FeatureView, projected


class FeatureService:
    """``FeatureService(name="model_v1", features=[tx_view, profile_view[["age"]]])``."""

    def __init__(
        self,
        *,
        name: str,
        features: Sequence[FeatureView],
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = check_name("FeatureService", name)
        where = f"FeatureService {name!r}"
        views = list(features)
        if not views:
            raise DefinitionError(f"{where}: features must list at least one feature view")
        for v in views:
            if not hasattr(v, "projection_dict"):
                raise DefinitionError(
                    f"{where}: features must be feature views (optionally projected, "
                    f"e.g. view[['a']]), got {v!r}"
                )
        names = [v.projected_name for v in views]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise DefinitionError(
                f"{where}: feature view {sorted(dup)[0]!r} is listed twice; give one of them "
                "another name with .with_name(...)"
            )
        self.feature_views = views
        self.description = description
        self.tags = check_tags(where, tags)
        self.owner = owner

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "name": self.name,
                "features": [v.projection_dict() for v in self.feature_views],
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any], views: Mapping[str, Any]) -> FeatureService:
        views_used = []
        for p in d["features"]:
            views_used.append(
                projected(
                    views,
                    p,
                    lambda v: (
                        f"feature service {d['name']!r} uses feature view {v!r}, which is "
                        "not registered"
                    ),
                )
            )
        return cls(
            name=d["name"],
            features=views_used,
            description=d.get("description", ""),
            tags=d.get("tags"),
            owner=d.get("owner", ""),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureService) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"FeatureService(name={self.name!r})"
