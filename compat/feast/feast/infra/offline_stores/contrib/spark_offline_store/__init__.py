"""Feast's ``...contrib.spark_offline_store``."""

from __future__ import annotations
