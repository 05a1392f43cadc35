"""Shared pytest fixtures.

Sections are kept apart so that several people can add fixtures here; put new ones in a
section of their own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path as _Path

import pytest

from banquet.redact import redact_text

# ---------------------------------------------------------------------------------------------
# Local servers: Postgres and Redis started by `make services` (scripts/services.sh).
# Connection settings come from scripts/services.env, which the Makefile sources before pytest;
# without them (a bare `pytest`) this file sources it itself, so the generated passwords are
# found too. The servers require them: Postgres scram-sha-256, Redis requirepass.
# A server that does not answer FAILS the tests that need it (it is never skipped silently).
# ---------------------------------------------------------------------------------------------

_SERVICES_ENV = _Path(__file__).resolve().parent.parent / "scripts" / "services.env"
_START_HINT = "run `make services` (scripts/services.sh start) to start the local servers"


def _load_services_env() -> None:
    """Fill in the BANQUET_* settings the environment lacks from scripts/services.env."""
    if "BANQUET_PG_DSN" in os.environ and "BANQUET_REDIS_PASSWORD" in os.environ:
        return
    out = subprocess.run(
        ["sh", "-c", '. "$0" && env -0', str(_SERVICES_ENV)],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    for line in out.split("\0"):
        name, eq, value = line.partition("=")
        if eq and name.startswith("BANQUET_"):
            os.environ.setdefault(name, value)


_load_services_env()


@pytest.fixture(scope="session")
def redis_password() -> str:
    """The password of the local Redis and Redis Cluster (BANQUET_REDIS_PASSWORD)."""
    return os.environ.get("BANQUET_REDIS_PASSWORD", "")


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """DSN of the local Postgres (BANQUET_PG_DSN), checked to answer `SELECT 1`."""
    import psycopg

    dsn = os.environ["BANQUET_PG_DSN"]
    error = None
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1").fetchone()
    except psycopg.Error as e:
        error = str(e).strip()
    if error is not None:
        pytest.fail(
            redact_text(f"Postgres at {dsn} does not answer: {_START_HINT} ({error})", dsn),
            pytrace=False,
        )
    return dsn


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the local Redis (BANQUET_REDIS_URL), checked to answer PING."""
    import redis

    url = os.environ["BANQUET_REDIS_URL"]
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    error = None
    try:
        client.ping()
    except redis.RedisError as e:
        error = str(e).strip()
    finally:
        client.close()
    if error is not None:
        pytest.fail(
            redact_text(f"Redis at {url} does not answer: {_START_HINT} ({error})", url),
            pytrace=False,
        )
    return url


# ---------------------------------------------------------------------------------------------
# (end of the local servers section)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Feature repos in temporary folders (definitions, config, registry, repo, CLI tests).
# `tmp_repo(...)` writes feature_store.yaml, small Parquet sources and definition files into a
# fresh folder under tmp_path and returns it; `write_parquet` writes one small Parquet file.
# ---------------------------------------------------------------------------------------------

import textwrap  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO_YAML = """\
project: {project}
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""

# One entity, two file sources, two views and a service: what most repo tests start from.
REPO_FEATURES = """\
from datetime import timedelta

from banquet import Entity, FeatureService, FeatureView, Field, FileSource
from banquet.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"], description="a customer")

profile_source = FileSource(
    name="profiles", path="data/profiles.parquet", timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
activity_source = FileSource(
    name="activity", path="data/activity.parquet", timestamp_field="event_timestamp"
)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[Field(name="age", dtype=Int64), Field(name="segment", dtype=String)],
    source=profile_source,
    tags={"team": "growth"},
)

user_activity = FeatureView(
    name="user_activity",
    entities=[user],
    schema=[Field(name="clicks", dtype=Int64), Field(name="score", dtype=Float64)],
    source=activity_source,
)

model_v1 = FeatureService(name="model_v1", features=[user_profile[["age"]], user_activity])
"""

_T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _write_parquet(path: Path, columns: dict[str, Any]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def _default_sources(data: Path) -> None:
    import pyarrow as pa

    ts = pa.array([_T0 + timedelta(hours=h) for h in range(4)], pa.timestamp("us", tz="UTC"))
    _write_parquet(
        data / "profiles.parquet",
        {
            "user_id": pa.array([1, 2, 3, 1], pa.int64()),
            "event_timestamp": ts,
            "created": ts,
            "age": pa.array([30, 41, 25, 31], pa.int64()),
            "segment": pa.array(["a", "b", "a", "c"]),
        },
    )
    _write_parquet(
        data / "activity.parquet",
        {
            "user_id": pa.array([1, 2, 3, 2], pa.int64()),
            "event_timestamp": ts,
            "clicks": pa.array([5, 0, 7, 1], pa.int64()),
            "score": pa.array([0.5, 0.25, 1.0, 0.75], pa.float64()),
        },
    )


@pytest.fixture
def write_parquet() -> Callable[[Path, dict[str, Any]], Path]:
    """``write_parquet(path, {"col": pyarrow array or list, ...})`` -> path."""
    return _write_parquet


@pytest.fixture
def repo_features() -> str:
    """The text of the default ``features.py`` that ``tmp_repo`` writes."""
    return REPO_FEATURES


@pytest.fixture(scope="session")
def repo_files() -> tuple[str, Callable[[Path], None]]:
    """(REPO_YAML, _default_sources) for fixtures of wider scope than ``tmp_repo``; a test
    module cannot import them: ``conftest`` names a different module per test folder."""
    return REPO_YAML, _default_sources


@pytest.fixture
def tmp_repo(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``tmp_repo(files=None, *, yaml=None, project="test_project", name="repo")``.

    ``files`` maps repo-relative paths to text (dedented); None means the default
    ``features.py`` (REPO_FEATURES). ``yaml`` replaces the default feature_store.yaml (``{project}`` in
    it is replaced by ``project``). The folder gets ``data/profiles.parquet`` and
    ``data/activity.parquet`` (user_id, event_timestamp, [created], features).
    """
    counter = iter(range(1_000_000))

    def make(
        files: dict[str, str] | None = None,
        *,
        yaml: str | None = None,
        project: str = "test_project",
        name: str | None = None,
    ) -> Path:
        root = tmp_path / (name or f"repo{next(counter)}")
        root.mkdir(parents=True)
        (root / "feature_store.yaml").write_text((yaml or REPO_YAML).replace("{project}", project))
        _default_sources(root / "data")
        for rel, text in ({"features.py": REPO_FEATURES} if files is None else files).items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))
        return root

    return make


# ---------------------------------------------------------------------------------------------
# (end of the feature repos section)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# S3: the local S3-compatible server (moto) from `make services` (BANQUET_TEST_S3_ENDPOINT).
# `s3_env` points the AWS settings of this process at it (throwaway keys, no ~/.aws files);
# `s3_bucket` is a fresh bucket with helpers that write objects through the S3 API (boto3).
# ---------------------------------------------------------------------------------------------

import contextlib  # noqa: E402
import io  # noqa: E402
from collections.abc import Iterator  # noqa: E402

S3_TEST_KEYS = {"AWS_ACCESS_KEY_ID": "AKIATESTBANQUET00001", "AWS_SECRET_ACCESS_KEY": "s3cr3t-t3st"}


@contextlib.contextmanager
def s3_test_env(tmp: Path) -> Iterator[None]:
    """The AWS environment the S3 tests run under: the test keys, a region, and no profile or
    endpoint of the machine's (the credentials/config files point into ``tmp``)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in (
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "AWS_DEFAULT_REGION",
        ):
            mp.delenv(name, raising=False)
        for name, value in S3_TEST_KEYS.items():
            mp.setenv(name, value)
        mp.setenv("AWS_REGION", "us-east-1")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "aws-credentials"))
        mp.setenv("AWS_CONFIG_FILE", str(tmp / "aws-config"))
        yield


class S3Bucket:
    """A bucket on the test server; ``put_parquet`` / ``put`` write through the S3 API."""

    def __init__(self, endpoint: str, name: str) -> None:
        import boto3

        self.endpoint, self.name = endpoint, name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_TEST_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_TEST_KEYS["AWS_SECRET_ACCESS_KEY"],
        )
        self.client.create_bucket(Bucket=name)

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body)

    def put_parquet(self, key: str, table: Any) -> None:
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(table, buf)
        self.put(key, buf.getvalue())

    def get_parquet(self, key: str) -> Any:
        import pyarrow.parquet as pq

        body = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return pq.read_table(io.BytesIO(body))

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.name, Key=key)

    def remove(self) -> None:
        for key in self.keys():
            self.delete(key)
        self.client.delete_bucket(Bucket=self.name)


@pytest.fixture(scope="session")
def s3_tools() -> tuple[Callable[[Path], contextlib.AbstractContextManager[None]], type[S3Bucket]]:
    """(s3_test_env, S3Bucket) for fixtures of wider scope than ``s3_bucket``."""
    return s3_test_env, S3Bucket


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """URL of the local S3 server (BANQUET_TEST_S3_ENDPOINT), checked to answer."""
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("BANQUET_TEST_S3_ENDPOINT", "")
    error = None if endpoint else "BANQUET_TEST_S3_ENDPOINT is not set"
    if endpoint:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=5).close()
        except (OSError, urllib.error.URLError) as e:
            error = str(e)
    if error is not None:
        pytest.fail(
            f"S3 server at {endpoint} does not answer: {_START_HINT} ({error})", pytrace=False
        )
    return endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str, tmp_path: Path) -> Iterator[S3Bucket]:
    """A fresh bucket, with this process's AWS settings pointed at the test server."""
    import uuid as _uuid

    with s3_test_env(tmp_path):
        bucket = S3Bucket(s3_endpoint, f"banquet-{_uuid.uuid4().hex[:16]}")
        yield bucket
        bucket.remove()


# ---------------------------------------------------------------------------------------------
# (end of the S3 section)
# ---------------------------------------------------------------------------------------------
