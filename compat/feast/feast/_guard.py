"""Refuse to run over a real Feast: both distributions own the ``feast`` package, so with
both installed the files in ``site-packages/feast`` are a mix of the two."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution


def refuse_real_feast() -> None:
    try:
        real = distribution("feast")
    except PackageNotFoundError:
        return
    raise ImportError(
        f"`feast` is provided by banquet-feast, but Feast {real.version} is installed too and "
        "the two share the `feast` package. Run `pip uninstall feast banquet-feast`, then "
        "`pip install banquet-feast` (README, 'Switching from Feast')."
    )
