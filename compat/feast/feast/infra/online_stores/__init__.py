"""Feast's ``feast.infra.online_stores``."""

from __future__ import annotations
