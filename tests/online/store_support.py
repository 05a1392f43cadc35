"""Helpers the online store suites share (test modules cannot import conftest.py)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from banquet import Entity, FeatureView, Field, FileSource, RepoConfig
from banquet.config import PostgresOnlineConfig, RedisOnlineConfig
from banquet.online.base import OnlineStore, rows_batch
from banquet.online.postgres import PostgresOnlineStore
from banquet.online.redis import RedisOnlineStore
from banquet.types import Int64

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def view(name: str) -> FeatureView:
    return FeatureView(
        name=name,
        entities=[Entity(name="user", join_keys=["user_id"])],
        schema=[Field(name="x", dtype=Int64)],
        source=FileSource(path="data/x.parquet", timestamp_field="ts"),
    )


def write(
    store: OnlineStore, project: str, rows: list[tuple[bytes, int, int, bytes]], v: str = "v"
) -> None:
    keys, ev, cr, blobs = (list(c) for c in zip(*rows, strict=True))
    store.write(project, v, rows_batch(keys, ev, cr, blobs))


def read1(store: OnlineStore, project: str, keys: list[bytes], v: str = "v") -> list[bytes | None]:
    return store.read(project, [(v, keys)])[0]


def redis_store(tmp_path: Path, port: int, **options: Any) -> RedisOnlineStore:
    cs = ",".join([f"127.0.0.1:{port}", "db=0", *(f"{k}={v}" for k, v in options.items())])
    config = RepoConfig(
        project="gone", online_store=RedisOnlineConfig(connection_string=cs), repo_path=tmp_path
    )
    return RedisOnlineStore(config)


def pg_store(tmp_path: Path, **settings: Any) -> PostgresOnlineStore:
    config = RepoConfig(
        project="gone", online_store=PostgresOnlineConfig(**settings), repo_path=tmp_path
    )
    return PostgresOnlineStore(config)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server a test started (resumed first if the test paused it): SIGTERM, then
    SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
