"""Feast's ``feast.infra.offline_stores.contrib``."""

from __future__ import annotations
