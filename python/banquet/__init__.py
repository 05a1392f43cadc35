"""banquet: a feature store with Feast's Python API and a Rust core."""

from banquet._core import __version__

__all__ = ["__version__"]
