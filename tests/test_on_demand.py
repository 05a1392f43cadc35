"""On-demand feature views: pandas and python modes in historical and online retrieval,
feature services mixing them with plain views, request fields, output schema checks, and the
function's trip through the registry into a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from banquet import (
    FeatureService,
    FeatureStore,
    Field,
    OnDemandFeatureView,
    RequestSource,
    on_demand_feature_view,
)
from banquet.errors import (
    DefinitionError,
    EntityDataError,
    FeatureNotFound,
    FunctionNotSerializable,
    OnDemandFunctionError,
    OnDemandOutputError,
    RequestDataNotFound,
)
from banquet.repo import load_repo
from banquet.types import Float64, Int64

MakeRepo = Callable[..., Path]
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)

# The default tmp_repo data: activity.parquet holds (user_id, event_timestamp, clicks, score)
# = (1, T0, 5, 0.5), (2, T0+1h, 0, 0.25), (3, T0+2h, 7, 1.0), (2, T0+3h, 1, 0.75).
FEATURES = """\
from math import sqrt

import numpy as np
import pandas as pd

from banquet import (
    Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, on_demand_feature_view,
)
from banquet.types import Float64, Int64, String, UnixTimestamp

SCALE = 10
user = Entity(name="user", join_keys=["user_id"])
activity = FeatureView(
    name="activity",
    entities=[user],
    schema=[Field(name="clicks", dtype=Int64), Field(name="score", dtype=Float64)],
    source=FileSource(name="activity_src", path="data/activity.parquet",
                      timestamp_field="event_timestamp"),
)
req = RequestSource(name="req", schema=[Field(name="amount", dtype=Float64)])


@on_demand_feature_view(
    sources=[activity, req],
    schema=[Field(name="spend_ratio", dtype=Float64), Field(name="bucket", dtype=String)],
)
def pandas_odfv(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame()
    out["spend_ratio"] = inputs["amount"] / (inputs["clicks"] + 1)
    out["bucket"] = np.where(inputs["activity__clicks"] > 3, "high", "low")
    return out


@on_demand_feature_view(
    sources=[activity[["score"]], req],
    schema=[Field(name="scaled", dtype=Float64), Field(name="total", dtype=Int64)],
    mode="python",
)
def python_odfv(inputs: dict) -> dict:
    return {
        "scaled": [None if s is None else s * SCALE for s in inputs["score"]],
        "total": [int(a) + 1 for a in inputs["amount"]],
    }


@on_demand_feature_view(
    sources=[req], schema=[Field(name="half", dtype=Float64)], mode="python", singleton=True
)
def one_row(row: dict) -> dict:
    return {"half": row["amount"] / 2}


@on_demand_feature_view(sources=[activity], schema=[Field(name="nothing", dtype=Int64)])
def missing_column(inputs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"something_else": inputs["clicks"]})


@on_demand_feature_view(
    sources=[activity], schema=[Field(name="label", dtype=Int64)], mode="python"
)
def wrong_type(inputs: dict) -> dict:
    return {"label": [f"user {c}" for c in inputs["clicks"]]}


@on_demand_feature_view(sources=[req], schema=[Field(name="boom", dtype=Int64)], mode="python")
def raises(inputs: dict) -> dict:
    raise ValueError("no good")


@on_demand_feature_view(
    sources=[activity[["clicks"]].with_name("act").with_join_key_map({"user_id": "buyer"})],
    schema=[Field(name="double_clicks", dtype=Int64)],
    mode="python",
)
def buyer_clicks(inputs: dict) -> dict:
    return {"double_clicks": [None if c is None else 2 * c for c in inputs["act__clicks"]]}


ts_req = RequestSource(name="ts_req", schema=[Field(name="at", dtype=UnixTimestamp)])


@on_demand_feature_view(
    sources=[ts_req], schema=[Field(name="hours", dtype=Float64)], mode="python"
)
def hours_since_2024(inputs: dict) -> dict:
    from datetime import datetime, timezone

    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return {"hours": [sqrt(((t - start).total_seconds() / 3600) ** 2) for t in inputs["at"]]}


svc = FeatureService(
    name="svc", features=[activity[["clicks"]], pandas_odfv[["spend_ratio"]], python_odfv]
)
"""


def _entity_df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "event_timestamp": [T0 + timedelta(hours=1), T0 + timedelta(hours=3), T0],
            "amount": [12.0, 4.0, 8.0],
        }
    )


@pytest.fixture(scope="module")
def store(
    tmp_path_factory: pytest.TempPathFactory, repo_files: tuple[str, Callable[[Path], None]]
) -> FeatureStore:
    """The FEATURES repo, applied and materialized (built once: the tests only read)."""
    REPO_YAML, _default_sources = repo_files

    root = tmp_path_factory.mktemp("odfv") / "repo"
    root.mkdir()
    (root / "feature_store.yaml").write_text(REPO_YAML.replace("{project}", "odfv_test"))
    _default_sources(root / "data")
    (root / "features.py").write_text(FEATURES)
    fs = FeatureStore(repo_path=root)
    fs.apply()
    fs.materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    return fs


# --- historical ------------------------------------------------------------------------------


def test_historical_pandas_and_python_modes(store: FeatureStore) -> None:
    df = store.get_historical_features(
        _entity_df(),
        [
            "pandas_odfv:spend_ratio",
            "activity:clicks",
            "python_odfv:scaled",
            "pandas_odfv:bucket",
            "python_odfv:total",
            "one_row:half",
        ],
    ).to_df()
    assert list(df.columns) == [
        "user_id",
        "event_timestamp",
        "amount",
        "spend_ratio",
        "clicks",
        "scaled",
        "bucket",
        "total",
        "half",
    ]
    # user 1 at T0+1h sees (5, 0.5); user 2 at T0+3h sees (1, 0.75); user 3 at T0 sees nothing.
    assert df["clicks"].tolist()[:2] == [5, 1] and pd.isna(df["clicks"][2])
    assert df["spend_ratio"].tolist()[:2] == [2.0, 2.0] and pd.isna(df["spend_ratio"][2])
    assert df["bucket"].tolist() == ["high", "low", "low"]
    assert df["scaled"].tolist()[:2] == [5.0, 7.5] and pd.isna(df["scaled"][2])
    assert df["total"].tolist() == [13, 5, 9]
    assert df["half"].tolist() == [6.0, 2.0, 4.0]
    table = store.get_historical_features(_entity_df(), ["python_odfv:total"]).to_arrow()
    assert table.schema.field("total").type == pa.int64()
    assert table.column_names == ["user_id", "event_timestamp", "amount", "total"]


def test_historical_full_feature_names_and_service(store: FeatureStore) -> None:
    full = store.get_historical_features(
        _entity_df(), ["pandas_odfv:spend_ratio", "activity:clicks"], full_feature_names=True
    ).to_df()
    assert list(full.columns)[3:] == ["pandas_odfv__spend_ratio", "activity__clicks"]
    svc = store.get_historical_features(_entity_df(), store.get_feature_service("svc")).to_df()
    assert list(svc.columns)[3:] == ["clicks", "spend_ratio", "scaled", "total"]
    assert svc["total"].tolist() == [13, 5, 9]


def test_historical_missing_request_field_is_reported_by_name(store: FeatureStore) -> None:
    entity_df = _entity_df().drop(columns=["amount"])
    with pytest.raises(
        RequestDataNotFound, match=r"\[.amount.\] missing from entity_df.*by pandas_odfv"
    ):
        store.get_historical_features(entity_df, ["pandas_odfv:spend_ratio"])
    # Views that need no request field do not ask for it.
    store.get_historical_features(entity_df, ["missing_column:nothing"])  # lazy: not run


# --- online ----------------------------------------------------------------------------------


def test_online_pandas_and_python_modes(store: FeatureStore) -> None:
    resp = store.get_online_features(
        ["pandas_odfv:spend_ratio", "python_odfv:scaled", "pandas_odfv:bucket", "one_row:half"],
        [{"user_id": 2, "amount": 4.0}, {"user_id": 99, "amount": 3}],
    )
    d = resp.to_dict()
    # as Feast's: the join keys, then the features; the request field is not echoed
    assert list(d) == ["user_id", "spend_ratio", "scaled", "bucket", "half"]
    # user 2's latest row is (clicks 1, score 0.75); user 99 is unknown.
    assert d["spend_ratio"] == [2.0, None]
    assert d["scaled"] == [7.5, None]
    assert d["bucket"] == ["low", "low"]
    assert d["half"] == [2.0, 1.5]
    assert resp.statuses == {
        "spend_ratio": ["PRESENT", "NULL_VALUE"],
        "scaled": ["PRESENT", "NULL_VALUE"],
        "bucket": ["PRESENT", "PRESENT"],
        "half": ["PRESENT", "PRESENT"],
    }
    assert set(resp.event_timestamps) == {"spend_ratio", "scaled", "bucket", "half"}
    table = resp.to_arrow()
    assert table.schema.field("spend_ratio").type == pa.float64()
    assert table.schema.field("bucket").type == pa.string()


def test_online_full_names_and_service_mixing_views(store: FeatureStore) -> None:
    rows = {"user_id": [1, 2], "amount": [12.0, 4.0]}
    full = store.get_online_features(
        ["activity:clicks", "python_odfv:total"], rows, full_feature_names=True
    ).to_dict()
    assert full == {
        "user_id": [1, 2],
        "activity__clicks": [5, 1],
        "python_odfv__total": [13, 5],
    }
    resp = store.get_online_features(store.get_feature_service("svc"), rows)
    assert resp.to_dict() == {
        "user_id": [1, 2],
        "clicks": [5, 1],
        "spend_ratio": [2.0, 2.0],
        "scaled": [5.0, 7.5],
        "total": [13, 5],
    }
    assert list(resp.statuses) == ["clicks", "spend_ratio", "scaled", "total"]


def test_timestamp_request_field_from_iso_strings_and_datetimes(store: FeatureStore) -> None:
    iso = store.get_online_features(["hours_since_2024:hours"], {"at": ["2024-01-01T05:00:00Z"]})
    assert iso.to_dict()["hours"] == [5.0]
    naive = store.get_online_features(["hours_since_2024:hours"], [{"at": "2024-01-01 02:30:00"}])
    assert naive.to_dict()["hours"] == [2.5]
    aware = datetime(2024, 1, 1, 3, tzinfo=timezone.utc)
    assert store.get_online_features(["hours_since_2024:hours"], [{"at": aware}]).to_dict()[
        "hours"
    ] == [3.0]
    hist = store.get_historical_features(
        _entity_df().assign(at=[T0 + timedelta(hours=h) for h in (1, 2, 4)]),
        ["hours_since_2024:hours"],
    ).to_df()
    assert hist["hours"].tolist() == [1.0, 2.0, 4.0]
    with pytest.raises(EntityDataError, match="'at'.*UnixTimestamp"):
        store.get_online_features(["hours_since_2024:hours"], [{"at": "yesterday"}])


def test_source_view_alias_and_join_key_map(store: FeatureStore) -> None:
    online = store.get_online_features(["buyer_clicks:double_clicks"], {"buyer": [1, 2, 7]})
    assert online.to_dict() == {"buyer": [1, 2, 7], "double_clicks": [10, 2, None]}
    hist = store.get_historical_features(
        _entity_df().rename(columns={"user_id": "buyer"}), ["buyer_clicks:double_clicks"]
    ).to_df()
    assert hist["double_clicks"].tolist()[:2] == [10, 2] and pd.isna(hist["double_clicks"][2])


def test_online_request_field_errors(store: FeatureStore) -> None:
    with pytest.raises(
        RequestDataNotFound, match=r"\[.amount.\] missing from entity_rows.*python_odfv"
    ):
        store.get_online_features(["python_odfv:total"], [{"user_id": 1}])
    with pytest.raises(EntityDataError, match="request field.*'amount'.*Float64"):
        store.get_online_features(["python_odfv:total"], [{"user_id": 1, "amount": "lots"}])


def test_bad_output_is_a_typed_error_naming_view_and_column(store: FeatureStore) -> None:
    rows = [{"user_id": 1, "amount": 1.0}]
    with pytest.raises(OnDemandOutputError, match="'missing_column'.*no column 'nothing'"):
        store.get_online_features(["missing_column:nothing"], rows)
    with pytest.raises(OnDemandOutputError, match="'wrong_type'.*'label'.*Int64"):
        store.get_historical_features(_entity_df(), ["wrong_type:label"]).to_df()
    with pytest.raises(OnDemandOutputError, match="'wrong_type'.*'label'.*Int64"):
        store.get_online_features(["wrong_type:label"], rows)
    with pytest.raises(OnDemandFunctionError, match="'raises'.*ValueError: no good"):
        store.get_online_features(["raises:boom"], rows)
    with pytest.raises(FeatureNotFound, match="pandas_odfv.*'nope'"):
        store.get_online_features(["pandas_odfv:nope"], rows)


# --- registry, CLI, serialization --------------------------------------------------------------

_READER = """\
import json, sys
from datetime import datetime, timezone
import pandas as pd
from banquet import FeatureStore

store = FeatureStore(repo_path=sys.argv[1])
online = store.get_online_features(
    store.get_feature_service("svc"), [{"user_id": 2, "amount": 4.0}]
).to_dict()
hist = store.get_historical_features(
    pd.DataFrame({"user_id": [1], "event_timestamp": [datetime(2024, 1, 1, 1, tzinfo=timezone.utc)],
                  "amount": [12.0]}),
    ["python_odfv:scaled", "pandas_odfv:bucket"],
).to_df()
print(json.dumps({"online": online, "hist": hist[["scaled", "bucket"]].to_dict("list"),
                  "repo_modules": sorted(m for m in sys.modules if m == "features")}))
"""


def _run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_function_round_trips_through_the_registry_into_a_fresh_process(
    tmp_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = tmp_repo({"features.py": FEATURES}, project="odfv_round_trip")
    cli = [sys.executable, "-m", "banquet.cli", "-c", str(repo)]
    _run([*cli, "apply"], tmp_path)
    FeatureStore(repo_path=repo).materialize(T0 - timedelta(days=1), T0 + timedelta(days=1))
    listing = _run([*cli, "on-demand-feature-views", "list"], tmp_path)
    rows = [line.split() for line in listing.strip().splitlines()]
    assert rows[0] == ["NAME", "MODE", "SOURCES", "FEATURES"]
    assert ["python_odfv", "python", "activity,req", "scaled,total"] in rows

    record = FeatureStore(repo_path=repo).registry_dump()["on_demand_feature_views"]["python_odfv"]
    assert record["udf"]["source"].startswith("def python_odfv(inputs: dict) -> dict:")
    assert record["udf"]["globals"] == {"SCALE": {"literal": "10"}}
    records = FeatureStore(repo_path=repo).registry_dump()["on_demand_feature_views"]
    assert records["pandas_odfv"]["udf"]["globals"] == {
        "np": {"module": "numpy"},
        "pd": {"module": "pandas"},
    }
    assert records["hours_since_2024"]["udf"]["globals"] == {
        "sqrt": {"module": "math", "attr": "sqrt"}
    }
    assert record["sources"][0] == {"feature_view": {"view": "activity", "features": ["score"]}}
    assert FeatureStore(repo_path=repo).registry_dump()["data_sources"]["req"]["kind"] == "request"

    script = tmp_path / "reader.py"
    script.write_text(_READER)
    got = json.loads(_run([sys.executable, str(script), str(repo)], tmp_path))
    assert got["repo_modules"] == []  # the function came from the registry, not features.py
    assert got["online"] == {
        "user_id": [2],
        "clicks": [1],
        "spend_ratio": [2.0],
        "scaled": [7.5],
        "total": [5],
    }
    assert got["hist"] == {"scaled": [5.0], "bucket": ["high"]}

    # The feature server computes them too, and names a missing request field (a 400).
    status, body = _serve_and_post(
        [*cli, "serve", "--host", "127.0.0.1"],
        tmp_path,
        [
            {"feature_service": "svc", "entities": {"user_id": [2], "amount": [4.0]}},
            {"features": ["python_odfv:total"], "entities": {"user_id": [2]}},
        ],
    )
    assert status[0] == 200
    assert body[0]["metadata"]["feature_names"] == [  # no request field, as Feast's
        "user_id",
        "clicks",
        "spend_ratio",
        "scaled",
        "total",
    ]
    assert [r["values"] for r in body[0]["results"]] == [[2], [1], [2.0], [7.5], [5]]
    assert body[0]["results"][3]["statuses"] == ["PRESENT"]
    assert status[1] == 400
    assert body[1]["error"]["type"] == "RequestDataNotFound"
    assert "'amount'" in body[1]["error"]["message"]


def _serve_and_post(
    command: list[str], cwd: Path, requests: list[dict[str, Any]]
) -> tuple[list[int], list[Any]]:
    """Start `banquet serve` on a free port, POST each body to /get-online-features."""
    import socket
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = cwd / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "banquet serve did not start in 30 s"
                time.sleep(0.1)
        statuses, bodies = [], []
        for req in requests:
            post = urllib.request.Request(
                f"{base}/get-online-features",
                data=json.dumps(req).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(post, timeout=10) as resp:
                    statuses.append(resp.status)
                    bodies.append(json.loads(resp.read()))
            except urllib.error.HTTPError as e:
                statuses.append(e.code)
                bodies.append(json.loads(e.read()))
        return statuses, bodies
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_apply_refuses_functions_that_cannot_be_stored(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo(None, project="odfv_refuse")
    fs = FeatureStore(repo_path=repo)
    req = RequestSource(name="r", schema=[Field(name="x", dtype=Int64)])
    schema = [Field(name="y", dtype=Int64)]
    factor = 3

    def closure(inputs: dict) -> dict:
        return {"y": [v * factor for v in inputs["x"]]}

    cases: list[tuple[Any, str]] = [
        (lambda inputs: inputs, "lambdas cannot be stored"),
        (closure, r"enclosing function \(factor\)"),
        (_uses_helper, r"'_helper'.*function from the feature repo|'_helper'"),
        (len, "plain Python function"),
    ]
    for fn, message in cases:
        view = OnDemandFeatureView(name="bad", sources=[req], schema=schema, udf=fn, mode="python")
        with pytest.raises(FunctionNotSerializable, match=message):
            fs.apply([req, view])
    assert fs.list_on_demand_feature_views() == []

    # A view defined in a repo file that calls a helper of that file is refused at apply,
    # naming the helper; nothing is registered.
    bad = tmp_repo(
        {
            "features.py": FEATURES
            + textwrap.dedent(
                """
                def helper(x):
                    return x + 1


                @on_demand_feature_view(sources=[req], schema=[Field(name="y", dtype=Int64)],
                                        mode="python")
                def uses_helper(inputs: dict) -> dict:
                    return {"y": [helper(a) for a in inputs["amount"]]}
                """
            )
        },
        project="odfv_refuse_repo",
    )
    bad_store = FeatureStore(repo_path=bad)
    with pytest.raises(FunctionNotSerializable, match="uses_helper.*'helper'.*feature repo"):
        bad_store.apply()
    assert bad_store.list_feature_views() == []


def _helper(x: int) -> int:
    return x + 1


def _uses_helper(inputs: dict[str, list[int]]) -> dict[str, list[int]]:
    return {"y": [_helper(v) for v in inputs["x"]]}


def test_plan_apply_remove_and_definition_checks(tmp_repo: MakeRepo) -> None:
    repo = tmp_repo({"features.py": FEATURES}, project="odfv_lifecycle")
    fs = FeatureStore(repo_path=repo)
    plan = fs.plan().render()
    assert "+ On-demand feature view pandas_odfv" in plan
    fs.apply()
    assert [v.name for v in fs.list_on_demand_feature_views()] == [
        "buyer_clicks",
        "hours_since_2024",
        "missing_column",
        "one_row",
        "pandas_odfv",
        "python_odfv",
        "raises",
        "wrong_type",
    ]
    assert fs.plan().empty  # the stored record is stable across loads
    # Removing a view from the code removes it from the registry; a FeatureService may not
    # name an on-demand view that is not defined.
    (repo / "features.py").write_text(FEATURES.replace("def raises(", "def raised_again("))
    d = fs.apply()
    assert d.removed["on_demand_feature_views"] == ["raises"]
    assert d.added["on_demand_feature_views"] == ["raised_again"]
    fs.teardown()
    assert FeatureStore(repo_path=repo).list_on_demand_feature_views() == []

    # An on-demand view cannot be applied without the views it reads.
    other = FeatureStore(repo_path=tmp_repo(None, project="odfv_alone"))
    alone = load_repo(repo).on_demand_feature_views["python_odfv"]
    with pytest.raises(DefinitionError, match="python_odfv.*'activity'.*not defined"):
        other.apply([alone])

    req = RequestSource(name="r", schema=[Field(name="x", dtype=Int64)])
    with pytest.raises(DefinitionError, match="mode must be 'pandas' or 'python'"):
        on_demand_feature_view(sources=[req], schema=[Field(name="y", dtype=Int64)], mode="sql")(
            _uses_helper
        )
    with pytest.raises(DefinitionError, match="singleton=True needs mode='python'"):
        on_demand_feature_view(
            sources=[req], schema=[Field(name="y", dtype=Int64)], singleton=True
        )(_uses_helper)
    with pytest.raises(DefinitionError, match="sources must be"):
        OnDemandFeatureView(name="v", sources=["x"], schema=[Field(name="y", dtype=Int64)], udf=len)  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="schema must be"):
        OnDemandFeatureView(name="v", sources=[req], schema=[], udf=_uses_helper)
    only_odfv = OnDemandFeatureView(
        name="v", sources=[req], schema=[Field(name="y", dtype=Float64)], udf=_uses_helper
    )
    with pytest.raises(DefinitionError, match="has no join keys"):
        only_odfv.with_join_key_map({"a": "b"})
    FeatureService(name="s", features=[only_odfv[["y"]]])  # accepted like a view projection


def test_historical_on_demand_over_the_spilled_join(store: FeatureStore, tmp_path: Path) -> None:
    """With a tiny ``memory_limit`` the views are joined partition by partition and the
    output is assembled in chunks of 1024 rows: the on-demand views run per chunk and the
    result is the in-memory one."""
    import dataclasses

    from banquet.config import FileOfflineConfig

    refs = ["pandas_odfv:spend_ratio", "activity:clicks", "python_odfv:total", "one_row:half"]
    entity = pd.concat([_entity_df()] * 1000, ignore_index=True)  # 3000 rows: 3 chunks
    entity["amount"] = np.arange(len(entity), dtype=float)
    want = store.get_historical_features(entity, refs).to_arrow()
    cfg = store.config
    assert isinstance(cfg.offline_store, FileOfflineConfig)
    offline = dataclasses.replace(
        cfg.offline_store, memory_limit="64", spill_dir=str(tmp_path / "spill")
    )
    tiny = FeatureStore(config=dataclasses.replace(cfg, offline_store=offline))
    job = tiny.get_historical_features(entity, refs)
    batches = list(job.to_arrow_batches())
    assert len(batches) == 3
    assert pa.Table.from_batches(batches).equals(want)
    assert not any((tmp_path / "spill").iterdir())
