"""``FeatureService``: a named list of features a model uses, from one or more views."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from banquet._naming import check_name, check_tags, drop_empty
from banquet.errors import DefinitionError
from banquet.feature_logging import LoggingConfig, warn_not_logged
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
        logging_config: LoggingConfig | None = None,
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
        if logging_config is not None and not isinstance(logging_config, LoggingConfig):
            raise DefinitionError(f"{where}: logging_config must be a LoggingConfig")
        self.logging_config = logging_config
        if logging_config is not None:
            warn_not_logged(self.name)

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "name": self.name,
                "features": [v.projection_dict() for v in self.feature_views],
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
                "logging_config": self.logging_config.to_dict() if self.logging_config else None,
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
            logging_config=LoggingConfig.from_dict(d["logging_config"])
            if d.get("logging_config")
            else None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureService) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"FeatureService(name={self.name!r})"
