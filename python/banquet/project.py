"""Feast's ``Project`` definition object: accepted in a repo's files for compatibility.

banquet's project is the ``project:`` of ``feature_store.yaml``; a ``Project`` in the
definitions names it again (with a description, tags and an owner); ``apply`` ignores it
(nothing in banquet reads a project's description)."""

from __future__ import annotations

from typing import Any

from banquet._naming import check_name, check_tags, drop_empty


class Project:
    """``Project(name="demo", description="...")``; kept for Feast's repos, ignored by apply."""

    def __init__(
        self,
        *,
        name: str,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = check_name("Project", name)
        self.description = description
        self.tags = check_tags(f"Project {name!r}", tags)
        self.owner = owner

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "name": self.name,
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
            }
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Project) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Project(name={self.name!r})"


__all__ = ["Project"]
