"""``Entity``: the thing features describe, identified by its join key."""

from __future__ import annotations

from typing import Any

from banquet import types
from banquet._naming import check_name, check_tags, drop_empty
from banquet.errors import DefinitionError


class Entity:
    """``Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)``.

    ``join_keys`` defaults to ``[name]``. ``value_type`` is optional: when omitted, the key's
    type comes from the feature views that use the entity (their schema or source).
    """

    def __init__(
        self,
        *,
        name: str,
        join_keys: list[str] | None = None,
        value_type: types.ValueType | types.BanquetType | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        owner: str = "",
    ) -> None:
        self.name = check_name("Entity", name)
        owner_s = f"Entity {name!r}"
        if join_keys is None:
            join_keys = [name]
        if isinstance(join_keys, str):
            join_keys = [join_keys]
        if len(join_keys) != 1:
            raise DefinitionError(
                f"{owner_s}: join_keys must hold exactly one column name, got {join_keys!r}; "
                "for a composite key define one entity per column and list them all in the view"
            )
        self.join_key = check_name(f"{owner_s} join key", join_keys[0])
        dtype: types.BanquetType | None
        if value_type is None or value_type == types.ValueType.UNKNOWN:
            dtype = None
        elif isinstance(value_type, types.BanquetType):
            dtype = value_type
        else:
            try:
                dtype = types.from_value_type(value_type)
            except (ValueError, TypeError):
                raise DefinitionError(
                    f"{owner_s}: value_type must be a ValueType such as ValueType.INT64, "
                    f"got {value_type!r}"
                ) from None
        if dtype is not None and dtype.name not in (
            "int32",
            "int64",
            "string",
            "bytes",
            "timestamp",
        ):
            raise DefinitionError(
                f"{owner_s}: a join key must be INT32, INT64, STRING, BYTES or UNIX_TIMESTAMP, "
                f"got {dtype}"
            )
        self.dtype = dtype
        self.description = description
        self.tags = check_tags(owner_s, tags)
        self.owner = owner

    @property
    def join_keys(self) -> list[str]:
        return [self.join_key]

    @property
    def value_type(self) -> types.ValueType:
        return self.dtype.value_type if self.dtype else types.ValueType.UNKNOWN

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "name": self.name,
                "join_key": self.join_key,
                "dtype": self.dtype.name if self.dtype else None,
                "description": self.description,
                "tags": self.tags,
                "owner": self.owner,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entity:
        return cls(
            name=d["name"],
            join_keys=[d["join_key"]],
            value_type=types.from_name(d["dtype"]) if d.get("dtype") else None,
            description=d.get("description", ""),
            tags=d.get("tags"),
            owner=d.get("owner", ""),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entity) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Entity(name={self.name!r}, join_keys={self.join_keys!r})"
