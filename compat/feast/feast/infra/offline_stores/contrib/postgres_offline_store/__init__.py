"""Feast's ``...contrib.postgres_offline_store``."""

from __future__ import annotations
