"""The ``feast`` command: banquet's CLI under Feast's name (``feast apply``, ``feast serve
-h HOST -p PORT``, ``feast teardown`` ...)."""

from __future__ import annotations


def main() -> None:
    import feast  # noqa: F401 - the guard against a real Feast runs first
    from banquet.cli import cli

    cli(prog_name="feast")
