"""Feast-compatible import paths, so code written for Feast runs with ``feast`` -> ``banquet``."""
