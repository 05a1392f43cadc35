"""Feast's feature-view versions (``FeatureView(version=...)``, ``view@vN:feature``) on
banquet's storage generations.

banquet keeps one definition of a view: the latest applied. Its version number is the view's
online storage generation (``<view>@<n>``, ARCHITECTURE.md "Data flow: apply"): 0 at the
first apply, one more at each apply that changes what is stored (features, types, entities,
source). So ``version="latest"`` (Feast's default) is the only pin banquet honours, and a
reference ``view@vN:feature`` is served when ``vN`` is the view's current version; an older
version's definition and rows are not kept (Feast's ``enable_online_feature_view_versioning``
snapshots), which is a typed NotSupportedError naming the current version."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from banquet.errors import DefinitionError, NotSupportedError

if TYPE_CHECKING:
    from banquet.feature_view import FeatureView

_VERSION = re.compile(r"^v(?:ersion)?(\d+)$", re.IGNORECASE)


def parse_version(where: str, version: str) -> int | None:
    """``None`` for "latest" (or empty), ``N`` for "vN" / "versionN"."""
    if not isinstance(version, str):
        raise DefinitionError(f"{where}: version must be a string such as 'latest' or 'v2'")
    if not version or version.lower() == "latest":
        return None
    m = _VERSION.match(version)
    if m is None:
        raise DefinitionError(
            f"{where}: version {version!r} is not 'latest', 'vN' or 'versionN' (e.g. 'v2')"
        )
    return int(m.group(1))


def check_version(where: str, version: str) -> str:
    """A definition's ``version=``: "latest" accepted; a pinned version is refused (banquet
    keeps no older definitions to roll back to)."""
    n = parse_version(where, version)
    if n is None:
        return "latest"
    raise NotSupportedError(
        f"{where}: version={version!r} pins an older definition; banquet serves only the "
        "latest applied definition of a view. Remove version= (or write 'latest') and apply "
        "the definition you want served"
    )


def current_version(view: FeatureView) -> int:
    """The view's version number: its online storage generation."""
    storage = view.storage
    return int(storage.rpartition("@")[2]) if storage and "@" in storage else 0


def split_ref_view(view_name: str) -> tuple[str, int | None]:
    """``"view@v2"`` -> ``("view", 2)``; ``"view"`` -> ``("view", None)``."""
    if "@" not in view_name:
        return view_name, None
    name, _, tag = view_name.partition("@")
    n = parse_version(f"feature reference {view_name!r}", tag)
    return name, n


def check_served(view: FeatureView, n: int | None) -> None:
    """A ``view@vN`` reference: only the current version is served."""
    if n is None:
        return
    cur = current_version(view)
    if n != cur:
        raise NotSupportedError(
            f"feature view {view.name!r} is at version v{cur}; v{n} is not kept (banquet "
            f"serves only the latest definition). Request '{view.name}:<feature>' or "
            f"'{view.name}@v{cur}:<feature>'"
        )


__all__ = ["check_served", "check_version", "current_version", "parse_version", "split_ref_view"]
