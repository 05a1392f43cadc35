"""Feast's feature logging settings (``LoggingConfig``, ``FileLoggingDestination``), accepted
on a ``FeatureService`` and kept in the registry.

banquet does not log served features: a service with a ``logging_config`` warns once per
process (``FeatureLoggingIgnored``, a ``UserWarning``) and serves as without one."""

from __future__ import annotations

import warnings
from typing import Any

from banquet.errors import DefinitionError


class FeatureLoggingIgnored(UserWarning):
    """A ``FeatureService`` asks for feature logging, which banquet does not do."""


class LoggingDestination:
    """Where Feast would write logged features (base of the destinations)."""

    kind = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


class FileLoggingDestination(LoggingDestination):
    """``FileLoggingDestination(path="data")``: Parquet files under ``path`` (in Feast)."""

    kind = "file"

    def __init__(
        self, *, path: str, s3_endpoint_override: str = "", partition_by: list[str] | None = None
    ) -> None:
        if not isinstance(path, str) or not path:
            raise DefinitionError("FileLoggingDestination: path must be a non-empty folder path")
        self.path = path
        self.s3_endpoint_override = s3_endpoint_override
        self.partition_by = list(partition_by or [])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "path": self.path}
        if self.s3_endpoint_override:
            out["s3_endpoint_override"] = self.s3_endpoint_override
        if self.partition_by:
            out["partition_by"] = self.partition_by
        return out


class LoggingConfig:
    """``LoggingConfig(destination=FileLoggingDestination(path="data"), sample_rate=1.0)``."""

    def __init__(self, destination: LoggingDestination, sample_rate: float = 1.0) -> None:
        if not isinstance(destination, LoggingDestination):
            raise DefinitionError(
                f"LoggingConfig: destination must be a FileLoggingDestination, got {destination!r}"
            )
        if not 0.0 <= float(sample_rate) <= 1.0:
            raise DefinitionError(
                f"LoggingConfig: sample_rate is {sample_rate!r}; it must be between 0 and 1"
            )
        self.destination = destination
        self.sample_rate = float(sample_rate)

    def to_dict(self) -> dict[str, Any]:
        return {"destination": self.destination.to_dict(), "sample_rate": self.sample_rate}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoggingConfig:
        dest = dict(d["destination"])
        kind = dest.pop("kind", "file")
        if kind != "file":
            raise DefinitionError(f"LoggingConfig: unknown destination kind {kind!r}")
        return cls(FileLoggingDestination(**dest), d.get("sample_rate", 1.0))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoggingConfig) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.sample_rate)


_warned = False


def warn_not_logged(service: str) -> None:
    """Warn (once per process) that a service's ``logging_config`` has no effect."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"FeatureService {service!r} has a logging_config: banquet does not log served "
            "features, it serves them as without one (README, 'Switching from Feast')",
            FeatureLoggingIgnored,
            stacklevel=3,
        )


__all__ = [
    "FeatureLoggingIgnored",
    "FileLoggingDestination",
    "LoggingConfig",
    "LoggingDestination",
]
