"""Stored on-demand functions run only when trusted (issue #12, finding 2).

Whoever can write the registry used to run code in every process reading features: a stored
function's source was compiled on first use. These tests tamper with the registry (code
prepended to a stored function that writes a marker file) and check that a process trusts
only: functions it defined, its own feature repo's functions, pinned hashes
(feature_store.yaml / $BANQUET_TRUSTED_FUNCTIONS), or everything with trust_registry_code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from banquet import FeatureStore, Field, OnDemandFeatureView, RequestSource
from banquet.errors import ConfigError, OnDemandFunctionError, UntrustedFunction
from banquet.trust import ENV_VAR, function_hash
from banquet.types import Float64

MakeRepo = Callable[..., Path]

FEATURES = """\
from banquet import Entity, FeatureView, Field, FileSource, RequestSource, on_demand_feature_view
from banquet.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"])
activity = FeatureView(
    name="activity",
    entities=[user],
    schema=[Field(name="clicks", dtype=Int64), Field(name="score", dtype=Float64)],
    source=FileSource(name="activity_src", path="data/activity.parquet",
                      timestamp_field="event_timestamp"),
)
req = RequestSource(name="req", schema=[Field(name="amount", dtype=Float64)])
FACTOR = 2


@on_demand_feature_view(sources=[req], schema=[Field(name="scaled", dtype=Float64)],
                        mode="python")
def scaled(inputs: dict) -> dict:
    return {"scaled": [a * FACTOR for a in inputs["amount"]]}
"""

ROWS = [{"user_id": 1, "amount": 2.0}]


def _cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "banquet.cli", "-c", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _tamper(repo: Path, marker: Path, view: str = "scaled") -> str:
    """Prepend code writing ``marker`` to the stored function; return the new record's hash."""
    fs = FeatureStore(repo_path=repo)
    out: dict[str, str] = {}

    def change(state: dict[str, Any]) -> bool:
        rec = state["on_demand_feature_views"][view]["udf"]
        rec["source"] = (
            f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')\n" + rec["source"]
        )
        out["hash"] = function_hash(rec["name"], rec["source"], rec.get("globals"))
        return True

    fs.registry.update(fs.project, change)
    return out["hash"]


def _reader(repo: Path, folder: Path, extra_yaml: str = "") -> Path:
    """A folder with only a feature_store.yaml reading ``repo``'s registry and stores: a
    process that serves or trains from the registry alone (no repo files)."""
    folder.mkdir()
    (folder / "feature_store.yaml").write_text(
        f"project: trust_test\nregistry: {repo}/data/registry.db\n"
        f"online_store:\n  type: sqlite\n  path: {repo}/data/online_store.db\n"
        f"offline_store:\n  type: file\n{extra_yaml}"
    )
    return folder


@pytest.fixture
def applied(tmp_repo: MakeRepo) -> Path:
    """A repo applied by `banquet apply` in another process (so this process defined none of
    its functions)."""
    repo = tmp_repo({"features.py": FEATURES}, project="trust_test")
    _cli(repo, "apply")
    return repo


# --- the hash ----------------------------------------------------------------------------------


def test_hash_covers_source_name_and_every_bound_global() -> None:
    src = "def f(x):\n    return x * K\n"
    base = function_hash("f", src, {"K": {"literal": "2"}})
    assert len(base) == 64 and base == base.lower() and int(base, 16) >= 0
    # canonical: key order and a missing vs empty globals map do not matter
    assert function_hash("f", src, {"K": {"literal": "2"}}) == base
    assert function_hash("f", src, None) == function_hash("f", src, {})
    changed = [
        function_hash("f", "import os\n" + src, {"K": {"literal": "2"}}),  # code prepended
        function_hash("f", src, {"K": {"literal": "3"}}),  # a literal
        function_hash("f", src, {"K": {"module": "os"}}),  # a binding's kind
        function_hash("f", src, {"K": {"literal": "2"}, "os": {"module": "os"}}),  # an extra name
        function_hash("g", src, {"K": {"literal": "2"}}),  # which def is called
    ]
    assert len(set(changed)) == len(changed) and base not in changed


def test_apply_prints_the_hash_and_functions_lists_it(tmp_repo: MakeRepo, tmp_path: Path) -> None:
    applied = tmp_repo({"features.py": FEATURES}, project="trust_test")
    printed = _cli(applied, "apply")
    stored = FeatureStore(repo_path=applied).registry_dump()["on_demand_feature_views"]["scaled"]
    digest = function_hash(stored["udf"]["name"], stored["udf"]["source"], stored["udf"]["globals"])
    assert f"function of scaled: sha256 {digest}" in printed

    rows = [ln.split(None, 3) for ln in _cli(applied, "functions").strip().splitlines()]
    assert rows[0] == ["NAME", "SHA256", "REPO", "TRUSTED"]
    assert rows[1] == ["scaled", digest, "same", "defined in the feature repo"]

    marker = tmp_path / "marker"
    bad = _tamper(applied, marker)
    rows = [ln.split(None, 3) for ln in _cli(applied, "functions").strip().splitlines()]
    assert rows[1] == ["scaled", bad, "differs", "NO"]
    rows = [
        ln.split(None, 3)
        for ln in _cli(applied, "functions", env={ENV_VAR: bad}).strip().splitlines()
    ]
    assert rows[1] == ["scaled", bad, "differs", f"pinned in ${ENV_VAR}"]
    assert not marker.exists()  # listing never runs anything


# --- the finding: tampered registry --------------------------------------------------------------


def test_tampered_function_is_refused_by_a_process_without_the_repo(
    applied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "marker"
    bad = _tamper(applied, marker)
    reader = _reader(applied, tmp_path / "reader")
    monkeypatch.delenv(ENV_VAR, raising=False)

    fs = FeatureStore(repo_path=reader)
    with pytest.raises(UntrustedFunction) as e:
        fs.get_online_features(["scaled:scaled"], ROWS)
    msg = str(e.value)
    for part in ("'scaled'", bad, "trusted_functions", ENV_VAR, "trust_registry_code"):
        assert part in msg
    entity_df = pd.DataFrame(
        {"user_id": [1], "event_timestamp": [datetime(2024, 1, 2, tzinfo=timezone.utc)]}
    )
    entity_df["amount"] = [2.0]
    with pytest.raises(UntrustedFunction):  # a training job too
        fs.get_historical_features(entity_df, ["scaled:scaled"]).to_df()
    assert not marker.exists()

    # Each way of trusting it runs it (and so the prepended code: the knobs are real). Each
    # case tampers anew: a source compiled once is not compiled (nor its prelude run) again.
    monkeypatch.setenv(ENV_VAR, f" {bad.upper()} ,")
    resp = FeatureStore(repo_path=reader).get_online_features(["scaled:scaled"], ROWS)
    assert resp.to_dict()["scaled"] == [4.0] and marker.read_text() == "ran"
    monkeypatch.delenv(ENV_VAR)

    marker = tmp_path / "marker2"
    old, bad = bad, _tamper(applied, marker)
    old_pin = _reader(applied, tmp_path / "old_pin", f"trusted_functions:\n  - {old}\n")
    with pytest.raises(UntrustedFunction):  # a pin does not cover code changed since
        FeatureStore(repo_path=old_pin).get_online_features(["scaled:scaled"], ROWS)
    pinned = _reader(applied, tmp_path / "pinned", f"trusted_functions:\n  - {bad}\n")
    resp = FeatureStore(repo_path=pinned).get_online_features(["scaled:scaled"], ROWS)
    assert resp.to_dict()["scaled"] == [4.0] and marker.exists()

    marker = tmp_path / "marker3"
    _tamper(applied, marker)
    trusting = _reader(applied, tmp_path / "trusting", "trust_registry_code: true\n")
    resp = FeatureStore(repo_path=trusting).get_online_features(["scaled:scaled"], ROWS)
    assert resp.to_dict()["scaled"] == [4.0] and marker.exists()


def test_the_check_comes_before_any_compile(
    applied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = FeatureStore(repo_path=applied)

    def change(state: dict[str, Any]) -> bool:
        udf = state["on_demand_feature_views"]["scaled"]["udf"]
        udf["source"] = "this is not python (\n"
        udf["globals"] = {"x": {"module": "a_module_that_does_not_exist"}}
        return True

    fs.registry.update(fs.project, change)
    reader = _reader(applied, tmp_path / "reader")
    with pytest.raises(UntrustedFunction):
        FeatureStore(repo_path=reader).get_online_features(["scaled:scaled"], ROWS)
    trusting = _reader(applied, tmp_path / "trusting", "trust_registry_code: true\n")
    with pytest.raises(OnDemandFunctionError, match="a_module_that_does_not_exist") as e:
        FeatureStore(repo_path=trusting).get_online_features(["scaled:scaled"], ROWS)
    assert not isinstance(e.value, UntrustedFunction)


def test_tampered_function_is_refused_in_the_repo_naming_the_difference(
    applied: Path, tmp_path: Path
) -> None:
    """Started in the repo, a process trusts what the repo defines, not what the registry
    holds."""
    marker = tmp_path / "marker"
    _tamper(applied, marker)
    with pytest.raises(UntrustedFunction, match="repo defines a different function"):
        FeatureStore(repo_path=applied).get_online_features(["scaled:scaled"], ROWS)
    assert not marker.exists()


_READER = """\
import json, sys
from banquet import FeatureStore
from banquet.errors import UntrustedFunction

try:
    resp = FeatureStore(repo_path=sys.argv[1]).get_online_features(
        ["scaled:scaled"], [{"user_id": 1, "amount": 2.0}]
    )
    print(json.dumps({"scaled": resp.to_dict()["scaled"]}))
except UntrustedFunction as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"""


def test_a_fresh_process_refuses_it_and_runs_it_when_pinned(applied: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    bad = _tamper(applied, marker)
    script = tmp_path / "reader.py"
    script.write_text(_READER)
    reader = _reader(applied, tmp_path / "reader")

    def run(env: dict[str, str]) -> Any:
        proc = subprocess.run(
            [sys.executable, str(script), str(reader)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if k != ENV_VAR} | env,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert run({})["error"] == "UntrustedFunction"
    assert not marker.exists()
    assert run({ENV_VAR: bad}) == {"scaled": [4.0]}
    assert marker.exists()


def test_malformed_env_entry_is_a_config_error(
    applied: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tamper(applied, tmp_path / "marker")
    monkeypatch.setenv(ENV_VAR, "not-a-hash")
    with pytest.raises(ConfigError, match=f"{ENV_VAR}.*'not-a-hash'.*64 hex digits"):
        FeatureStore(repo_path=applied).get_online_features(["scaled:scaled"], ROWS)


# --- the normal workflow needs no configuration -------------------------------------------------


def test_training_script_in_the_repo_runs_the_applied_function(applied: Path) -> None:
    before = sys.modules.get("features")
    fs = FeatureStore(repo_path=applied)
    assert fs.get_online_features(["scaled:scaled"], ROWS).to_dict()["scaled"] == [4.0]
    entity_df = pd.DataFrame(
        {
            "user_id": [1],
            "event_timestamp": [datetime(2024, 1, 2, tzinfo=timezone.utc)],
            "amount": [3.0],
        }
    )
    assert fs.get_historical_features(entity_df, ["scaled:scaled"]).to_df()["scaled"].tolist() == [
        6.0
    ]
    # learning the repo's hashes leaves the process's modules as they were
    assert sys.modules.get("features") is before


def test_a_running_process_follows_a_reapplied_repo(applied: Path) -> None:
    """`banquet serve` keeps running while the user edits the repo and applies again: the
    new function is the repo's, so it is trusted (the repo is re-read when its files change)."""
    fs = FeatureStore(repo_path=applied)
    assert fs.get_online_features(["scaled:scaled"], ROWS).to_dict()["scaled"] == [4.0]
    features = applied / "features.py"
    features.write_text(features.read_text().replace("FACTOR = 2", "FACTOR = 300"))
    _cli(applied, "apply")
    fs.refresh_registry()
    assert fs.get_online_features(["scaled:scaled"], ROWS).to_dict()["scaled"] == [600.0]


def test_functions_defined_in_this_process_are_trusted(tmp_repo: MakeRepo, tmp_path: Path) -> None:
    """A notebook or script that defines a view and applies it runs it without configuration,
    also from a store that has no repo folder."""
    repo = tmp_repo(None, project="trust_local")
    req = RequestSource(name="req_local", schema=[Field(name="v", dtype=Float64)])
    view = OnDemandFeatureView(
        name="local_plus_one",
        sources=[req],
        schema=[Field(name="w", dtype=Float64)],
        udf=_plus_one,
        mode="python",
    )
    FeatureStore(repo_path=repo).apply([req, view])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "feature_store.yaml").write_text(
        f"project: trust_local\nregistry: {repo}/data/registry.db\n"
        f"online_store:\n  type: sqlite\n  path: {repo}/data/online_store.db\n"
    )
    got = FeatureStore(repo_path=elsewhere).get_online_features(["local_plus_one:w"], [{"v": 1.5}])
    assert got.to_dict()["w"] == [2.5]


def _plus_one(inputs: dict[str, list[float]]) -> dict[str, list[float]]:
    return {"w": [x + 1 for x in inputs["v"]]}


def test_a_repo_that_fails_to_import_trusts_nothing_and_says_so(applied: Path) -> None:
    features = applied / "features.py"
    features.write_text(features.read_text() + "\nraise RuntimeError('secret-token-123')\n")
    with pytest.raises(UntrustedFunction, match=r"importing its files failed \(RepoError") as e:
        FeatureStore(repo_path=applied).get_online_features(["scaled:scaled"], ROWS)
    assert "secret-token-123" not in str(e.value)  # the message may reach an HTTP body
