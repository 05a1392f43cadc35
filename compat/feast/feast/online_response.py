"""Feast's ``feast.online_response``."""

from __future__ import annotations

from banquet.serving import (
    OnlineResponse,
)
from feast._forward import forward

__all__ = ["OnlineResponse"]
__getattr__ = forward(__name__, "banquet.serving")
