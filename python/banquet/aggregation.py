"""``Aggregation``: a windowed aggregate of one source column, declared on a feature view.

A view with ``aggregations=[...]`` serves one feature per aggregation, computed point-in-time
correct over a window ending at each request time (ARCHITECTURE.md, "Windowed aggregations"):
for a row at time T the window is ``(T - time_window, T]``; with ``slide_interval`` it ends at
T floored to the interval on the UTC epoch; without one it slides exactly (Feast copies
``time_window`` into a missing ``slide_interval``; banquet keeps "none" as exact sliding).

The output feature is named as Feast's ``Aggregation.resolved_name(time_window)`` names it:
``{function}_{column}_{seconds}s`` (``name=`` overrides).

>>> from datetime import timedelta
>>> a = Aggregation(column="amount", function="sum", time_window=timedelta(hours=1))
>>> a.feature_name
'sum_amount_3600s'
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from banquet import types
from banquet._naming import check_name, drop_empty
from banquet.errors import DefinitionError, DefinitionTypeError
from banquet.types import BanquetType

FUNCTIONS = (
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "last",
    "stddev",
    "count_distinct",
    "approx_count_distinct",
)

_INTS = ("int32", "int64")
_FLOATS = ("float32", "float64")
# Which column types each function accepts (the Rust kernel's value representations).
_ACCEPTS: dict[str, tuple[str, ...] | None] = {
    "count": None,  # any type: counts non-null values
    "last": None,
    "sum": _INTS + _FLOATS,
    "mean": _INTS + _FLOATS,
    "stddev": _INTS + _FLOATS,
    "min": _INTS + _FLOATS + ("timestamp",),
    "max": _INTS + _FLOATS + ("timestamp",),
    "count_distinct": _INTS + ("string", "bytes", "bool"),
    "approx_count_distinct": _INTS + ("string", "bytes", "bool"),
}


def _window_us(where: str, what: str, value: object) -> int:
    if not isinstance(value, timedelta):
        raise DefinitionTypeError(f"{where}: {what} must be a datetime.timedelta, got {value!r}")
    us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if us <= 0:
        raise DefinitionError(f"{where}: {what} must be positive, got {value!r}")
    return us


class Aggregation:
    """``function`` of ``column`` over a ``time_window`` (a ``timedelta``), optionally
    hopping every ``slide_interval``; ``name`` overrides the output feature's name."""

    __slots__ = ("column", "function", "time_window", "slide_interval", "name")

    def __init__(
        self,
        column: str = "",
        function: str = "",
        time_window: timedelta | None = None,
        slide_interval: timedelta | None = None,
        name: str | None = None,
    ) -> None:
        where = f"Aggregation({function!r} of {column!r})"
        if not isinstance(column, str) or not column:
            raise DefinitionError(f"{where}: column must name a source column, got {column!r}")
        if function not in FUNCTIONS:
            raise DefinitionError(
                f"{where}: unknown function {function!r}; use one of {', '.join(FUNCTIONS)}"
            )
        if time_window is None:
            raise DefinitionError(
                f"{where}: time_window is required (a timedelta; the window is "
                "(T - time_window, T] for a row at time T)"
            )
        window = _window_us(where, "time_window", time_window)
        if slide_interval is not None:
            slide = _window_us(where, "slide_interval", slide_interval)
            # Whole tiles cover a window exactly only if the slide divides it (online tiles).
            if slide > window or window % slide:
                raise DefinitionError(
                    f"{where}: slide_interval {slide_interval} must divide time_window "
                    f"{time_window} (hopping windows are made of whole slides)"
                )
        if name is not None and name != "":
            check_name("Aggregation", name)
        self.column = column
        self.function = function
        self.time_window = time_window
        self.slide_interval = slide_interval
        self.name = name or ""

    @property
    def window_us(self) -> int:
        return _window_us("", "time_window", self.time_window)

    @property
    def slide_us(self) -> int | None:
        if self.slide_interval is None:
            return None
        return _window_us("", "slide_interval", self.slide_interval)

    @property
    def feature_name(self) -> str:
        """Feast's ``resolved_name(time_window)``: ``name``, else
        ``{function}_{column}_{whole seconds}s``."""
        if self.name:
            return self.name
        assert self.time_window is not None
        return f"{self.function}_{self.column}_{int(self.time_window.total_seconds())}s"

    def resolved_name(self, time_window: timedelta | None = None) -> str:
        """Feast's spelling of ``feature_name``."""
        if self.name:
            return self.name
        base = f"{self.function}_{self.column}"
        if time_window is not None and time_window.total_seconds() > 0:
            return f"{base}_{int(time_window.total_seconds())}s"
        return base

    def output_type(self, column_type: BanquetType, where: str) -> BanquetType:
        """The output feature's type given the aggregated column's (count -> Int64; sum of
        ints Int64, of floats Float64; min/max/last keep the column's type; mean/stddev
        Float64; count_distinct/approx_count_distinct Int64)."""
        accepts = _ACCEPTS[self.function]
        if accepts is not None and column_type.name not in accepts:
            raise DefinitionError(
                f"{where}: {self.function} cannot aggregate column {self.column!r} of type "
                f"{column_type}; it takes {', '.join(accepts)} columns"
            )
        f = self.function
        if f in ("count", "count_distinct", "approx_count_distinct"):
            return types.Int64
        if f in ("mean", "stddev"):
            return types.Float64
        if f == "sum":
            return types.Int64 if column_type.name in _INTS else types.Float64
        return column_type  # min, max, last

    def to_dict(self) -> dict[str, Any]:
        return drop_empty(
            {
                "column": self.column,
                "function": self.function,
                "time_window_us": self.window_us,
                "slide_interval_us": self.slide_us,
                "name": self.name,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Aggregation:
        slide = d.get("slide_interval_us")
        return cls(
            column=d["column"],
            function=d["function"],
            time_window=timedelta(microseconds=d["time_window_us"]),
            slide_interval=None if slide is None else timedelta(microseconds=slide),
            name=d.get("name") or None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Aggregation) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.column, self.function, self.window_us))

    def __repr__(self) -> str:
        slide = f", slide_interval={self.slide_interval!r}" if self.slide_interval else ""
        return (
            f"Aggregation(column={self.column!r}, function={self.function!r}, "
            f"time_window={self.time_window!r}{slide}, name={self.feature_name!r})"
        )
