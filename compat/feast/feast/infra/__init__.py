"""Feast's ``feast.infra`` package (its stores' import paths)."""

from __future__ import annotations
