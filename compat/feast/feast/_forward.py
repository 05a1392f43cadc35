"""Names a ``feast`` module does not list explicitly are looked up in banquet's modules, so
a name banquet adds later appears under Feast's path without a change here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def forward(module: str, *targets: str) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        if not name.startswith("__"):
            for target in targets:
                try:
                    mod = importlib.import_module(target)
                except ImportError:
                    continue
                if name in vars(mod) or name in getattr(mod, "__all__", ()):
                    return getattr(mod, name)
        raise AttributeError(
            f"module {module!r} has no attribute {name!r}: banquet does not provide Feast's "
            f"{module}.{name} (README, 'Switching from Feast', lists what is provided)"
        )

    return __getattr__
