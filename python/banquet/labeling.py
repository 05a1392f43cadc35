"""Feast's label views: ``LabelView`` (labels as a feature view) and ``ConflictPolicy``.

A ``LabelView`` is a :class:`~banquet.feature_view.FeatureView` over a label source
(usually a ``PushSource``): labels are retrieved, pushed and materialized like features.
``labeler_field`` names the column that says who labelled a row (a feature of the view, as
in Feast). ``ConflictPolicy.LAST_WRITE_WINS`` (Feast's default) is what banquet does for
every view: the label with the newest event time wins (then the newest created time).
Feast's other policies (``LABELER_PRIORITY``, ``MAJORITY_VOTE``) resolve conflicts across
labelers in offline reads; banquet does not implement them and refuses them at definition.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from banquet._naming import us_to_ttl
from banquet.entity import Entity
from banquet.errors import DefinitionError, NotSupportedError
from banquet.feature_view import FeatureView
from banquet.field import Field
from banquet.sources import DataSource


class ConflictPolicy(enum.Enum):
    """How labels from several labelers for one entity key are resolved (Feast's values)."""

    LAST_WRITE_WINS = "last_write_wins"
    LABELER_PRIORITY = "labeler_priority"
    MAJORITY_VOTE = "majority_vote"


class LabelView(FeatureView):
    """``LabelView(name=..., entities=[...], schema=[...], source=push_source,
    labeler_field="labeler", conflict_policy=ConflictPolicy.LAST_WRITE_WINS)``."""

    kind = "label view"

    def __init__(
        self,
        *,
        name: str,
        source: DataSource,
        schema: Sequence[Field] | None = None,
        entities: Sequence[Entity] | None = None,
        ttl: timedelta | None = None,
        online: bool = True,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
        labeler_field: str = "labeler",
        conflict_policy: ConflictPolicy = ConflictPolicy.LAST_WRITE_WINS,
        retain_history: bool = False,
        reference_feature_view: str | None = None,
    ) -> None:
        super().__init__(
            name=name,
            source=source,
            schema=schema,
            entities=entities,
            ttl=ttl,
            online=online,
            description=description,
            tags=tags,
            owner=owner,
        )
        where = f"LabelView {name!r}"
        try:
            policy = ConflictPolicy(conflict_policy)
        except ValueError:
            raise DefinitionError(
                f"{where}: conflict_policy must be a ConflictPolicy, got {conflict_policy!r}"
            ) from None
        if policy is not ConflictPolicy.LAST_WRITE_WINS:
            raise NotSupportedError(
                f"{where}: conflict_policy {policy.name} is not implemented by banquet; use "
                "ConflictPolicy.LAST_WRITE_WINS (the newest label wins, as for every view)"
            )
        if labeler_field and labeler_field not in {f.name for f in self.features}:
            raise DefinitionError(
                f"{where}: labeler_field {labeler_field!r} is not in the schema; add "
                f"Field(name={labeler_field!r}, dtype=String) to it"
            )
        self.labeler_field = labeler_field
        self.conflict_policy = policy
        self.retain_history = bool(retain_history)
        self.reference_feature_view = reference_feature_view

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["label"] = {
            "labeler_field": self.labeler_field,
            "conflict_policy": self.conflict_policy.value,
            "retain_history": self.retain_history,
            "reference_feature_view": self.reference_feature_view,
        }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], entities: Mapping[str, Entity]) -> LabelView:
        fields = [Field.from_dict(f) for f in d.get("entity_columns", []) + d.get("features", [])]
        label = d["label"]
        return cls(
            name=d["name"],
            source=DataSource.from_dict(d["source"]),
            schema=fields,
            entities=[entities[n] for n in d["entities"]],
            ttl=us_to_ttl(d.get("ttl_us")),
            online=d.get("online", False),
            description=d.get("description", ""),
            tags=d.get("tags"),
            owner=d.get("owner", ""),
            labeler_field=label.get("labeler_field", "labeler"),
            conflict_policy=ConflictPolicy(label.get("conflict_policy", "last_write_wins")),
            retain_history=label.get("retain_history", False),
            reference_feature_view=label.get("reference_feature_view"),
        )

    def __repr__(self) -> str:
        return f"LabelView(name={self.name!r}, features={[f.name for f in self.features]})"


__all__ = ["ConflictPolicy", "LabelView"]
