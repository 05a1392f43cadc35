"""Feast's ``feast.errors``: every banquet error, with Feast's names as aliases
(``FeatureViewNotFoundException`` is ``banquet.errors.FeatureViewNotFound`` ...)."""

from __future__ import annotations

from banquet.errors import *  # noqa: F403
from banquet.errors import __all__ as __all__
from feast._forward import forward

__getattr__ = forward(__name__, "banquet.errors")
