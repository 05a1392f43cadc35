"""Feast-compatible import path (see banquet.infra)."""
