"""Feast's ``feast.infra.online_stores.postgres_online_store``."""

from __future__ import annotations
