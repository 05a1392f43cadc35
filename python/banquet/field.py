"""``Field``: a named, typed column of a feature view or request source."""

from __future__ import annotations

from typing import Any

from banquet import types
from banquet._naming import check_name, check_tags, drop_empty
from banquet.errors import DefinitionError


class Field:
    """A column: ``Field(name="avg_spend", dtype=Float32)``."""

    __slots__ = ("name", "dtype", "description", "tags")

    def __init__(
        self,
        *,
        name: str,
        dtype: types.BanquetType,
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = check_name("Field", name)
        if isinstance(dtype, types.ValueType):
            try:
                dtype = types.from_value_type(dtype)
            except ValueError:
                raise DefinitionError(
                    f"Field {name!r}: ValueType.{dtype.name} is not a feature type; use a banquet "
                    "type such as Int64 or Array(Float32)"
                ) from None
        if not isinstance(dtype, types.BanquetType):
            raise DefinitionError(
                f"Field {name!r}: dtype must be a banquet type such as Int64 or "
                f"Array(Float32), got {dtype!r}"
            )
        self.dtype = dtype
        self.description = description
        self.tags = check_tags(f"Field {name!r}", tags)

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "name": self.name,
                "dtype": self.dtype.name,
                "description": self.description,
                "tags": self.tags,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Field:
        return cls(
            name=d["name"],
            dtype=types.from_name(d["dtype"]),
            description=d.get("description", ""),
            tags=d.get("tags"),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.name, self.dtype))

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, dtype={self.dtype!r})"


class Feature(Field):
    """Feast's older name for a feature column: ``Feature(name, dtype)``; same as ``Field``."""

    __slots__ = ()

    def __init__(
        self,
        name: str,
        dtype: types.BanquetType | types.ValueType,
        description: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name=name, dtype=dtype, description=description, tags=labels)  # type: ignore[arg-type]
