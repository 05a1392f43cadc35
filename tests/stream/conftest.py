"""Fixtures of tests/stream (the helpers live in stream_support.py)."""

from stream_support import kafka, topic  # noqa: F401 (pytest fixtures)
