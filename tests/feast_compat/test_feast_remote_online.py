"""``online_store: {type: remote}``: a banquet repo reading through a feature server (here
``banquet serve`` on the template's repo) gets the values, statuses and event times the
server's own store gives, Map / Json / Struct values included (their HTTP JSON); writes are
refused with the server-side way; an absent server is StoreUnavailable; the HTTP body's
Map / Json / Struct shapes are Feast's; with a real Feast, reads through `feast serve` too
(issue #16)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from feast_template import write_template

import banquet.feature_logging
from banquet import FeatureStore
from banquet.errors import NotSupportedError, StoreUnavailable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _logging_warned(monkeypatch: pytest.MonkeyPatch) -> None:
    # the template's driver_activity_v1 has a logging config: warn-once is tested elsewhere
    monkeypatch.setattr(banquet.feature_logging, "_warned", True)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    repo = write_template(tmp_path / "server")
    store = FeatureStore(repo_path=repo)
    store.apply()
    now = datetime.now(timezone.utc)
    store.materialize(now - timedelta(days=2), now)
    port = _free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "banquet.cli", "-c", str(repo), "serve", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "serve.log").read_text()) from None
                time.sleep(0.1)
        yield repo, port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def _client(tmp_path: Path, server_repo: Path, port: int) -> FeatureStore:
    """A repo sharing the server's registry, its online store the server."""
    client = tmp_path / "client"
    client.mkdir(parents=True)
    (client / "feature_store.yaml").write_text(
        "project: my_project\n"
        f"registry: {server_repo / 'data' / 'registry.db'}\n"
        "online_store:\n"
        "    type: remote\n"
        f"    path: http://127.0.0.1:{port}\n"
    )
    return FeatureStore(repo_path=client)


def test_remote_reads_equal_the_servers_store(served: tuple[Path, int], tmp_path: Path) -> None:
    server_repo, port = served
    local = FeatureStore(repo_path=server_repo)
    remote = _client(tmp_path, server_repo, port)
    rows = [{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 7}]
    refs = [
        "driver_hourly_stats:conv_rate",
        "driver_hourly_stats:avg_daily_trips",
        "driver_hourly_stats:driver_metadata",
        "driver_hourly_stats:driver_config",
        "driver_hourly_stats:driver_profile",
    ]
    want, got = local.get_online_features(refs, rows), remote.get_online_features(refs, rows)
    assert got.to_dict()["conv_rate"] == pytest.approx(want.to_dict()["conv_rate"])
    for name in ("driver_id", "avg_daily_trips", "driver_metadata", "driver_config"):
        assert got.to_dict()[name] == want.to_dict()[name], name
    assert got.to_dict()["driver_profile"] == want.to_dict()["driver_profile"]
    assert isinstance(got.to_dict()["driver_profile"][0], dict)
    assert got.statuses["conv_rate"] == want.statuses["conv_rate"]
    assert got.statuses["conv_rate"][2] == "NOT_FOUND"
    assert got.event_timestamps["conv_rate"][:2] == want.event_timestamps["conv_rate"][:2]
    # a feature service by name, with full feature names
    service = remote.get_feature_service("driver_activity_v1")
    rows2 = [{"driver_id": 1001, "val_to_add": 1, "val_to_add_2": 2}]
    got2 = remote.get_online_features(service, rows2, full_feature_names=True).to_dict()
    want2 = local.get_online_features(service, rows2, full_feature_names=True).to_dict()
    assert got2["driver_hourly_stats__conv_rate"] == pytest.approx(
        want2["driver_hourly_stats__conv_rate"]
    )
    assert got2["transformed_conv_rate__conv_rate_plus_val1"] == pytest.approx(
        want2["transformed_conv_rate__conv_rate_plus_val1"]
    )


def test_remote_refuses_writes_and_names_an_absent_server(
    served: tuple[Path, int], tmp_path: Path
) -> None:
    server_repo, port = served
    remote = _client(tmp_path, server_repo, port)
    row = {
        "driver_id": [1001],
        "event_timestamp": [datetime.now(timezone.utc)],
        "conv_rate": [1.0],
        "acc_rate": [1.0],
        "avg_daily_trips": [1],
        "driver_metadata": [{"vehicle_type": "van"}],
        "driver_config": ["{}"],
        "driver_profile": [{"name": "x", "age": "1"}],
    }
    with pytest.raises(NotSupportedError, match="POST /push"):
        remote.write_to_online_store("driver_hourly_stats", pd.DataFrame(row))
    down = _client(tmp_path / "other", server_repo, _free_port())
    with pytest.raises(StoreUnavailable, match="unreachable"):
        down.get_online_features(["driver_hourly_stats:conv_rate"], [{"driver_id": 1001}])


def test_http_body_has_feasts_document_shapes(served: tuple[Path, int]) -> None:
    """Feast's server sends a Json value as JSON text, Map / Struct values as objects."""
    _, port = served
    body = json.dumps(
        {
            "features": [
                "driver_hourly_stats:driver_config",
                "driver_hourly_stats:driver_profile",
                "driver_hourly_stats:driver_metadata",
            ],
            "entities": {"driver_id": [1001, 7]},
        }
    ).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/get-online-features",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        doc = json.loads(r.read())
    got = dict(zip(doc["metadata"]["feature_names"], doc["results"]))
    config = got["driver_config"]["values"]
    assert isinstance(config[0], str) and "preferred_zones" in json.loads(config[0])
    assert config[1] is None
    assert list(got["driver_profile"]["values"][0]) == ["name", "age"]
    assert isinstance(got["driver_metadata"]["values"][0], dict)


@pytest.mark.slow
@pytest.mark.real_feast
def test_remote_reads_from_feasts_server(tmp_path: Path, real_feast_python: str) -> None:
    """`feast serve` (the real Feast) on the template's repo; a banquet repo holding only
    Feast's registry.db (imported at first read) and `online_store: remote` reads through
    it the values banquet's own store serves for the same data."""
    feast_repo = write_template(tmp_path / "feast")
    ours = FeatureStore(repo_path=shutil.copytree(feast_repo, tmp_path / "ours" / "repo"))
    feast = str(Path(real_feast_python).parent / "feast")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    end = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0).isoformat()
    for args in (["apply"], ["materialize-incremental", end]):
        subprocess.run(
            [feast, *args], cwd=feast_repo, env=env, check=True, capture_output=True, timeout=300
        )
    ours.apply()
    ours.materialize_incremental(end_date=datetime.fromisoformat(end + "+00:00"))
    port = _free_port()
    log = open(tmp_path / "feast-serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [feast, "serve", "-p", str(port)], cwd=feast_repo, stdout=log, stderr=log, env=env
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "feast-serve.log").read_text()) from None
                time.sleep(0.5)
        client = tmp_path / "client"
        (client / "data").mkdir(parents=True)
        shutil.copy(feast_repo / "data" / "registry.db", client / "data" / "registry.db")
        (client / "feature_store.yaml").write_text(
            "project: my_project\nregistry: data/registry.db\n"
            f"online_store:\n    type: remote\n    path: http://127.0.0.1:{port}\n"
        )
        remote = FeatureStore(repo_path=client)
        refs = [
            "driver_hourly_stats:conv_rate",
            "driver_hourly_stats:avg_daily_trips",
            "driver_hourly_stats:driver_metadata",
            "driver_hourly_stats:driver_config",
            "driver_hourly_stats:driver_profile",
        ]
        rows = [{"driver_id": 1001}, {"driver_id": 1003}, {"driver_id": 7}]
        got = remote.get_online_features(refs, rows)
        want = ours.get_online_features(refs, rows)
        assert list(got.to_dict()) == list(want.to_dict())
        assert got.to_dict()["conv_rate"] == pytest.approx(want.to_dict()["conv_rate"])
        for name in ("avg_daily_trips", "driver_metadata", "driver_config", "driver_profile"):
            assert got.to_dict()[name] == want.to_dict()[name], name
        assert got.statuses["conv_rate"] == want.statuses["conv_rate"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
