"""The documentation's examples are true: README.md's Python blocks run, and every ``>>>``
example in banquet's docstrings passes ``doctest`` (both part of ``make test``).

README blocks run in order in one namespace, in a repo made by ``banquet init`` and
``banquet apply`` (the steps README's shell block shows), with the names the prose supplies:
``entity_df``, ``start`` and ``end``. A block fenced ```` ```python no-run ```` is illustrative
(placeholder names such as ``"view"``) and is only compiled.
"""

from __future__ import annotations

import doctest
import importlib
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "banquet"
_FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.M | re.S)


def readme_blocks() -> list[tuple[int, bool, str]]:
    """(line, runs, code) of each ```python block of README.md."""
    text = (ROOT / "README.md").read_text()
    return [
        (text.count("\n", 0, m.start()) + 1, "no-run" not in m.group(1).split(), m.group(2))
        for m in _FENCE.finditer(text)
    ]


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from banquet import FeatureStore
    from banquet.templates import create_repo

    repo = tmp_path / "my_repo"
    create_repo(repo, "my_repo", "local")
    monkeypatch.chdir(repo)
    FeatureStore(repo_path=".").apply()  # `banquet apply`
    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    namespace: dict[str, Any] = {
        "entity_df": pd.DataFrame(
            {"user_id": [1001, 1002, 1003], "event_timestamp": [end - timedelta(days=1)] * 3}
        ),
        "start": end - timedelta(days=14),
        "end": end,
    }
    blocks = readme_blocks()
    assert sum(runs for _, runs, _ in blocks) >= 3, "README lost its runnable examples"
    for line, runs, code in blocks:
        compiled = compile(code, f"README.md:{line}", "exec")
        if runs:
            exec(compiled, namespace)  # a failure names README.md:<line> in the traceback
    training = namespace["training_df"]
    assert list(training.columns) == [
        "user_id",
        "event_timestamp",
        "transaction_count",
        "avg_spend",
    ]
    assert len(training) == 3


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "templates" in path.parts or ">>>" not in path.read_text():
            continue
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        names.append(".".join(p for p in rel.parts if p != "__init__"))
    return names


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
