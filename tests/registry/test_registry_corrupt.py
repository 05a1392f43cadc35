"""A registry holding records banquet did not write (hand-edited, damaged, another version)
is ``RegistryCorrupt`` naming the project and the object, on both registries (issue #12,
finding 8): before, reading it raised a raw ``TypeError``/``KeyError``/``ValueError``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from banquet.errors import RegistryCorrupt
from banquet.registry import Catalog, Registry
from banquet.registry.base import State

PROJECT = "corrupt"


def _write(registry: Registry, change: Callable[[State], None]) -> None:
    def apply(state: State) -> bool:
        change(state)
        return True

    registry.update(PROJECT, apply)


CASES: dict[str, tuple[Callable[[State], Any], str]] = {
    "record lacks fields": (
        lambda s: s["entities"].__setitem__("user", {"name": "user"}),
        "entity 'user'",
    ),
    "record of a wrong type": (
        lambda s: s["feature_views"].__setitem__("v", ["not", "an", "object"]),
        "feature_views 'v'",
    ),
    "field of a wrong type": (
        lambda s: s["entities"].__setitem__("user", {"name": "user", "join_key": 5}),
        "entity 'user'",
    ),
    "intervals not pairs": (
        lambda s: s["materializations"].__setitem__("v", [[1, 2, 3]]),
        "intervals of 'v'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_records_are_registry_corrupt(registry: Registry, case: str) -> None:
    change, named = CASES[case]
    _write(registry, change)
    with pytest.raises(RegistryCorrupt) as info:
        Catalog(PROJECT, registry.read(PROJECT))
    message = str(info.value)
    assert named in message and repr(PROJECT) in message and "banquet apply" in message, message
