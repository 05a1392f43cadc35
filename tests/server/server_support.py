"""A real ``banquet serve`` process on a free loopback port, against a repo in a temp folder.

``start_server(repo)`` starts one and waits until it answers; every server a test module
started is stopped (by its pid) when the fixture is torn down. ``make_repo(...)`` writes a
repo (a push-fed view with every value kind, a file-fed view, a feature service), applies
it and materializes it.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(hours=2)

FEATURES = """\
from datetime import timedelta

from banquet import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from banquet.types import Array, Bytes, Float64, Int64, String, UnixTimestamp

user = Entity(name="user", join_keys=["user_id"])

events = FileSource(
    name="events", path="data/events", timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
stats_push = PushSource(name="stats_push", batch_source=events)

stats = FeatureView(
    name="stats",
    entities=[user],
    schema=[
        Field(name="clicks", dtype=Int64),
        Field(name="score", dtype=Float64),
        Field(name="label", dtype=String),
        Field(name="seen", dtype=UnixTimestamp),
        Field(name="blob", dtype=Bytes),
        Field(name="tags", dtype=Array(String)),
    ],
    source=stats_push,
)

stats_small = FeatureView(
    name="stats_small", entities=[user], schema=[Field(name="clicks", dtype=Int64)],
    source=stats_push,
)

profile = FeatureView(
    name="profile",
    entities=[user],
    ttl=timedelta(days=3650),
    schema=[Field(name="age", dtype=Int64), Field(name="segment", dtype=String)],
    source=FileSource(name="profiles", path="data/profiles.parquet",
                      timestamp_field="event_timestamp"),
)

model = FeatureService(name="model", features=[stats[["clicks", "score"]], profile])
"""

SQLITE = "online_store:\n  type: sqlite\n  path: data/online_store.db\n"


def redis_online(url: str) -> str:
    """The online_store section for the Redis at ``url`` (redis://[:password@]host:port/db)."""
    from urllib.parse import unquote, urlsplit

    u = urlsplit(url)
    auth = f",password={unquote(u.password)}" if u.password else ""
    db = (u.path or "/0").lstrip("/") or "0"
    return (
        f"online_store:\n  type: redis\n"
        f"  connection_string: '{u.hostname}:{u.port or 6379},db={db}{auth}'\n"
    )


def write_data(root: Path) -> None:
    ts = pa.timestamp("us", tz="UTC")
    (root / "data" / "events").mkdir(parents=True)
    t = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2, 3], pa.int64()),
                "event_timestamp": pa.array(t, ts),
                "created": pa.array(t, ts),
                "clicks": pa.array([10, None, 30], pa.int64()),
                "score": pa.array([0.5, 1.5, 2.5]),
                "label": pa.array(["a", "b", None]),
                "seen": pa.array([T0, T0, T0], ts),
                "blob": pa.array([b"\x00\x01", b"x", None]),
                "tags": pa.array([["x", "y"], [], None], pa.list_(pa.string())),
            }
        ),
        root / "data" / "events" / "part-0.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2], pa.int64()),
                "event_timestamp": pa.array([T0, T0], ts),
                "age": pa.array([30, 40], pa.int64()),
                "segment": pa.array(["gold", "new"]),
            }
        ),
        root / "data" / "profiles.parquet",
    )


def make_repo(
    root: Path,
    project: str,
    online: str = SQLITE,
    server_yaml: str = "",
    materialize: bool = True,
    extra_features: str = "",
) -> Path:
    from banquet import FeatureStore

    root.mkdir(parents=True)
    (root / "feature_store.yaml").write_text(
        f"project: {project}\nregistry: data/registry.db\nprovider: local\n{online}"
        f"offline_store:\n  type: file\n{server_yaml}"
    )
    write_data(root)
    (root / "features.py").write_text(FEATURES + extra_features)
    store = FeatureStore(repo_path=root)
    store.apply()
    if materialize:
        store.materialize(T0 - timedelta(days=1), NOW + timedelta(minutes=1))
    store.online_store.close()
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Client:
    """A keep-alive JSON client for one server (one per thread)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body, or the text when it is not JSON)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        for attempt in (0, 1):  # one retry on a keep-alive connection the server closed
            conn = self._conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self._conn = conn
            try:
                conn.request(method, path, body=data, headers=headers or {})
                resp = conn.getresponse()
                text = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt:
                    raise
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text.decode(errors="replace")

    def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        return self.request("POST", path, body, **kw)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Server(Client):
    """One ``banquet serve`` subprocess (and a client for it)."""

    def __init__(
        self, repo: Path, log: Path, ttl: float, env: dict[str, str] | None, args: list[str]
    ) -> None:
        super().__init__(free_port())
        self.repo = repo
        self.log = log
        cmd = [sys.executable, "-m", "banquet.cli", "-c", str(repo), "serve"]
        cmd += ["--port", str(self.port), "--registry-ttl-sec", str(ttl), *args]
        self._out = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                self.request("GET", "/health")
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not answer within {timeout}s: {self.output()}")

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        self.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def features_of(resp: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """The response as name -> {values, statuses, event_timestamps}."""
    names = resp["metadata"]["feature_names"]
    return dict(zip(names, resp["results"]))
