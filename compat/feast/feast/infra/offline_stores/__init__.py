"""Feast's ``feast.infra.offline_stores``."""

from __future__ import annotations
