"""Shared checks and helpers for definition objects."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from banquet.errors import DefinitionError, DuplicateNameError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")


def check_name(kind: str, name: object) -> str:
    """A definition's name: a non-empty identifier-like string."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise DefinitionError(
            f"{kind} name {name!r} is invalid: use letters, digits, '_', '-' or '.', "
            "starting with a letter or '_'"
        )
    return name


def check_unique(kind: str, owner: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise DuplicateNameError(f"{owner}: {kind} {n!r} is defined more than once")
        seen.add(n)


def check_tags(owner: str, tags: Mapping[str, str] | None) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise DefinitionError(f"{owner}: tags must be a dict of str to str, got {tags!r}")
    return dict(tags)


def ttl_to_us(owner: str, ttl: timedelta | int | float | None) -> int | None:
    """A ttl as whole microseconds; None and 0 both mean unbounded (stored as None)."""
    if ttl is None:
        return None
    if isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        ttl = timedelta(seconds=ttl)
    if not isinstance(ttl, timedelta):
        raise DefinitionError(f"{owner}: ttl must be a datetime.timedelta, got {ttl!r}")
    us = (ttl.days * 86_400 + ttl.seconds) * 1_000_000 + ttl.microseconds
    if us < 0:
        raise DefinitionError(f"{owner}: ttl must not be negative, got {ttl}")
    return us or None


def us_to_ttl(us: int | None) -> timedelta | None:
    return None if us is None else timedelta(microseconds=us)


def drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    """Leave out empty optional values so registry records stay small and diffs stay quiet."""
    return {k: v for k, v in d.items() if v not in (None, "", {}, [])}
