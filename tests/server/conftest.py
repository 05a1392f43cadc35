"""Fixtures of the server tests; the helpers they share live in ``server_support`` (a test
module cannot import ``conftest``: that name means another folder's conftest in a full run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_support import Server


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Server]]:
    """Factory: ``start_server(repo, ttl=0.2, env=None, args=())``; all stopped (by pid) at
    teardown."""
    started: list[Server] = []

    def start(
        repo: Path, ttl: float = 0.2, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> Server:
        log = tmp_path_factory.mktemp("server-log") / "serve.log"
        server = Server(repo, log, ttl, env, list(args))
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
