"""Concurrent pushes and reads against one server (SQLite): no errors, no lost pushes."""

from __future__ import annotations

from typing import Any

import pytest
from load import run_load
from server_support import Server, make_repo


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Server:
    return start_server(make_repo(tmp_path_factory.mktemp("load") / "repo", "srv_load"))


def test_concurrent_pushes_and_reads_lose_nothing(server: Server) -> None:
    result = run_load(server, seconds=3.0, pushers=2, readers=2)
    assert result["failures"] == []
    assert result["push"] > 20 and result["read"] > 20, result
    _, text = server.request("GET", "/metrics")
    assert 'banquet_server_requests_total{endpoint="/push",status="200"}' in text
