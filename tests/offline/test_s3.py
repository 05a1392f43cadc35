"""FileSource on S3 (``s3://``) against the local S3 server from `make services` (moto): the
data is written through the S3 API; historical retrieval, materialization into SQLite and
offline push read and write it there; every failure is a typed error naming the path and never
the credentials; credentials come from the environment or an AWS profile file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from banquet import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RepoConfig,
)
from banquet.errors import (
    DataSourceError,
    DefinitionError,
    SourceAccessDenied,
    SourceFileNotFound,
    SourceUnreachable,
)
from banquet.s3 import storage_options
from banquet.store import PushMode
from banquet.types import Float64, Int64, String

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)
UTC_US = pa.timestamp("us", tz="UTC")
KEY_ID, SECRET = "AKIATESTBANQUET00001", "s3cr3t-t3st"

user = Entity(name="user", join_keys=["user_id"])


def profiles_table() -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([1, 2, 3, 1, 2], pa.int64()),
            "event_timestamp": pa.array([T0, T0, T0, T0 + 2 * H, T0 + 3 * H], UTC_US),
            "created": pa.array([T0, T0, T0, T0 + 2 * H, T0 + 3 * H], UTC_US),
            "age": pa.array([30, 41, 25, 31, 42], pa.int64()),
            "segment": pa.array(["a", "b", "a", "c", "d"]),
        }
    )


def activity_parts() -> list[pa.Table]:
    """Two objects under one prefix (the second one newer)."""
    return [
        pa.table(
            {
                "user_id": pa.array([1, 2], pa.int64()),
                "event_timestamp": pa.array([T0, T0 + H], UTC_US),
                "score": pa.array([0.5, 0.25]),
            }
        ),
        pa.table(
            {
                "user_id": pa.array([1, 3], pa.int64()),
                "event_timestamp": pa.array([T0 + 2 * H, T0 + 2 * H], UTC_US),
                "score": pa.array([0.75, 1.0]),
            }
        ),
    ]


def views(profiles_path: str, activity_path: str, endpoint: str | None) -> list[Any]:
    kw: dict[str, Any] = {"s3_endpoint_override": endpoint} if endpoint else {}
    profiles = FileSource(
        name="profiles",
        path=profiles_path,
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        **kw,
    )
    activity = FileSource(
        name="activity", path=activity_path, timestamp_field="event_timestamp", **kw
    )
    return [
        user,
        FeatureView(
            name="user_profile",
            entities=[user],
            schema=[Field(name="age", dtype=Int64), Field(name="segment", dtype=String)],
            source=profiles,
        ),
        FeatureView(
            name="user_activity",
            entities=[user],
            schema=[Field(name="score", dtype=Float64)],
            source=activity,
        ),
    ]


def open_store(root: Path) -> FeatureStore:
    root.mkdir(parents=True, exist_ok=True)
    cfg = RepoConfig.from_dict(
        {
            "project": "s3test",
            "registry": str(root / "registry.db"),
            "online_store": {"type": "sqlite", "path": str(root / "online.db")},
            "offline_store": {"type": "file"},
        },
        repo_path=root,
    )
    return FeatureStore(config=cfg)


REFS = ["user_profile:age", "user_profile:segment", "user_activity:score"]


def entity_df() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3, 1, 4, 2],
            "event_timestamp": [T0, T0 + H, T0 + 2 * H, T0 + 5 * H, T0, T0 + 3 * H],
        }
    )


@pytest.fixture
def s3_repo(s3_bucket: Any, tmp_path: Path) -> tuple[FeatureStore, Any]:
    """A store whose two views read s3://bucket/profiles.parquet (one object) and
    s3://bucket/activity/ (a prefix of two objects)."""
    s3_bucket.put_parquet("profiles.parquet", profiles_table())
    for i, part in enumerate(activity_parts()):
        s3_bucket.put_parquet(f"activity/part-{i}.parquet", part)
    store = open_store(tmp_path / "s3")
    store.apply(
        views(s3_bucket.url("profiles.parquet"), s3_bucket.url("activity/"), s3_bucket.endpoint)
    )
    return store, s3_bucket


def local_store(tmp_path: Path) -> FeatureStore:
    import pyarrow.parquet as pq

    data = tmp_path / "local" / "data"
    (data / "activity").mkdir(parents=True)
    pq.write_table(profiles_table(), data / "profiles.parquet")
    for i, part in enumerate(activity_parts()):
        pq.write_table(part, data / "activity" / f"part-{i}.parquet")
    store = open_store(tmp_path / "local")
    store.apply(views("data/profiles.parquet", "data/activity", None))
    return store


# --- the paths that work ------------------------------------------------------------------------


def test_historical_retrieval_on_s3_matches_local_files(
    s3_repo: tuple[FeatureStore, Any], tmp_path: Path
) -> None:
    store, _ = s3_repo
    got = store.get_historical_features(entity_df(), REFS).to_arrow()
    want = local_store(tmp_path).get_historical_features(entity_df(), REFS).to_arrow()
    assert got.equals(want)
    assert got.column("age").to_pylist() == [30, 41, 25, 31, None, 42]
    assert got.column("score").to_pylist() == [0.5, 0.25, 1.0, 0.75, None, 0.25]


def test_a_hive_partitioned_prefix_is_read_with_its_partition_column(
    s3_bucket: Any, tmp_path: Path
) -> None:
    for i, part in enumerate(activity_parts()):
        s3_bucket.put_parquet(f"hive/day=2024-01-0{i + 1}/data.parquet", part)
    store = open_store(tmp_path / "r")
    src = FileSource(
        name="hive",
        path=s3_bucket.url("hive"),
        timestamp_field="event_timestamp",
        s3_endpoint_override=s3_bucket.endpoint,
    )
    fv = FeatureView(
        name="by_day", entities=[user], schema=[Field(name="score", dtype=Float64)], source=src
    )
    store.apply([user, fv])
    out = store.get_historical_features(entity_df(), ["by_day:score"]).to_arrow()
    assert out.column("score").to_pylist() == [0.5, 0.25, 1.0, 0.75, None, 0.25]


def test_materialize_from_s3_into_sqlite(s3_repo: tuple[FeatureStore, Any]) -> None:
    store, _ = s3_repo
    store.materialize(T0 - H, T0 + 10 * H)
    online = store.get_online_features(REFS, [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}])
    got = online.to_dict()
    assert got["age"] == [31, 42, 25]
    assert got["segment"] == ["c", "d", "a"]
    assert got["score"] == [0.75, 0.25, 1.0]


def test_materialize_window_prunes_rows_on_s3(s3_repo: tuple[FeatureStore, Any]) -> None:
    store, _ = s3_repo
    store.materialize(T0 - H, T0 + H)  # the later rows are outside the window
    got = store.get_online_features(REFS, [{"user_id": 1}, {"user_id": 3}]).to_dict()
    assert got["age"] == [30, 25]
    assert got["score"] == [0.5, None]


def push_views(path: str, endpoint: str) -> list[Any]:
    batch = FileSource(
        name="events_batch",
        path=path,
        timestamp_field="event_timestamp",
        s3_endpoint_override=endpoint,
    )
    push = PushSource(name="events_push", batch_source=batch)
    fv = FeatureView(
        name="events",
        entities=[user],
        schema=[Field(name="score", dtype=Float64)],
        source=push,
    )
    return [user, fv]


def pushed(scores: list[float], hours: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": list(range(1, len(scores) + 1)),
            "event_timestamp": [T0 + h * H for h in hours],
            "score": scores,
        }
    )


def test_offline_push_adds_an_object_under_a_prefix(s3_bucket: Any, tmp_path: Path) -> None:
    store = open_store(tmp_path / "r")
    store.apply(push_views(s3_bucket.url("events/"), s3_bucket.endpoint))  # nothing there yet
    store.push("events_push", pushed([0.5, 1.5], [0, 0]), to=PushMode.OFFLINE)
    store.push("events_push", pushed([2.5], [1]), to=PushMode.OFFLINE)
    keys = s3_bucket.keys("events/")
    assert len(keys) == 2 and all(k.endswith(".parquet") for k in keys)
    out = store.get_historical_features(
        pd.DataFrame({"user_id": [1, 2], "event_timestamp": [T0 + 2 * H, T0 + 2 * H]}),
        ["events:score"],
    ).to_arrow()
    assert out.column("score").to_pylist() == [2.5, 1.5]


def test_offline_push_rewrites_a_single_object_source(s3_bucket: Any, tmp_path: Path) -> None:
    s3_bucket.put_parquet(
        "events.parquet",
        pa.table(
            {
                "user_id": pa.array([1], pa.int64()),
                "event_timestamp": pa.array([T0], UTC_US),
                "score": pa.array([0.5]),
            }
        ),
    )
    store = open_store(tmp_path / "r")
    store.apply(push_views(s3_bucket.url("events.parquet"), s3_bucket.endpoint))
    store.push("events_push", pushed([9.5, 3.0], [1, 1]), to=PushMode.OFFLINE)
    assert s3_bucket.keys() == ["events.parquet"]
    table = s3_bucket.get_parquet("events.parquet")
    assert table.column("score").to_pylist() == [0.5, 9.5, 3.0]
    assert table.schema.field("user_id").type == pa.int64()


# --- errors: typed, naming the path, never the credentials -------------------------------------


def assert_clean(err: BaseException, *must: str) -> None:
    text = str(err)
    for part in must:
        assert part in text, text
    assert KEY_ID not in text and SECRET not in text, text


def one_view(path: str, endpoint: str) -> list[Any]:
    src = FileSource(
        name="src", path=path, timestamp_field="event_timestamp", s3_endpoint_override=endpoint
    )
    return [
        user,
        FeatureView(
            name="v", entities=[user], schema=[Field(name="score", dtype=Float64)], source=src
        ),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint(s3_bucket: Any, tmp_path: Path) -> None:
    store = open_store(tmp_path / "r")
    dead = f"http://127.0.0.1:{free_port()}"
    t = time.monotonic()
    with pytest.raises(SourceUnreachable) as e:
        store.apply(one_view("s3://some-bucket/x.parquet", dead))
    assert time.monotonic() - t < 30
    assert_clean(e.value, "s3://some-bucket/x.parquet", dead, "'src'")


def test_an_endpoint_from_the_environment_is_redacted_in_messages(
    s3_bucket: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:pw4xyz@127.0.0.1:{free_port()}")
    src = FileSource(name="src", path="s3://b/x.parquet", timestamp_field="event_timestamp")
    fv = FeatureView(name="v", entities=[user], schema=[Field(name="s", dtype=Float64)], source=src)
    with pytest.raises(SourceUnreachable) as e:
        open_store(tmp_path / "r").apply([user, fv])
    assert_clean(e.value, "s3://b/x.parquet", "user:***@127.0.0.1")
    assert "pw4xyz" not in str(e.value)


def test_missing_bucket(s3_bucket: Any, tmp_path: Path) -> None:
    store = open_store(tmp_path / "r")
    with pytest.raises(SourceFileNotFound) as e:
        store.apply(one_view("s3://no-such-bucket-banquet/x.parquet", s3_bucket.endpoint))
    assert_clean(
        e.value, "s3://no-such-bucket-banquet/x.parquet", "bucket 'no-such-bucket-banquet'"
    )


def test_missing_object(s3_repo: tuple[FeatureStore, Any]) -> None:
    store, bucket = s3_repo
    bucket.delete("profiles.parquet")  # applied, then the object went away
    with pytest.raises(SourceFileNotFound) as e:
        store.get_historical_features(entity_df(), REFS).to_arrow()
    assert_clean(e.value, bucket.url("profiles.parquet"), "no such object")
    with pytest.raises(SourceFileNotFound):
        store.materialize(T0 - H, T0 + H)


def test_an_object_that_is_not_parquet(s3_bucket: Any, tmp_path: Path) -> None:
    s3_bucket.put("junk.parquet", b"not parquet at all")
    with pytest.raises(DataSourceError) as e:
        open_store(tmp_path / "r").apply(
            one_view(s3_bucket.url("junk.parquet"), s3_bucket.endpoint)
        )
    assert_clean(e.value, s3_bucket.url("junk.parquet"))


# --- an authenticating server: denied access, credentials from the env and from a profile ------


class AuthServer:
    """A throwaway moto server that checks signatures and IAM policies: ``reader`` may do
    anything with S3, ``viewer`` only read, ``stranger`` nothing at all."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "moto-auth.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"moto did not start on {self.endpoint}") from None
                time.sleep(0.05)
        import boto3

        kw: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "AKIASETUP",
            "aws_secret_access_key": "setup",
        }
        s3 = boto3.client("s3", **kw)
        s3.create_bucket(Bucket="guarded")
        import io

        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(activity_parts()[0], buf)
        s3.put_object(Bucket="guarded", Key="data.parquet", Body=buf.getvalue())
        iam = boto3.client("iam", **kw)
        self.keys: dict[str, tuple[str, str]] = {}
        for name in ("reader", "viewer", "stranger"):
            iam.create_user(UserName=name)
            k = iam.create_access_key(UserName=name)["AccessKey"]
            self.keys[name] = (k["AccessKeyId"], k["SecretAccessKey"])
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="reader", PolicyName="all", PolicyDocument=json.dumps(policy))
        policy["Statement"][0]["Action"] = ["s3:GetObject", "s3:ListBucket"]  # type: ignore[index]
        iam.put_user_policy(UserName="viewer", PolicyName="read", PolicyDocument=json.dumps(policy))
        # From now on every request must be signed by a known key and allowed by IAM.
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(req, timeout=5).close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    server = AuthServer(tmp_path_factory.mktemp("moto-auth"))
    yield server
    server.stop()


def read_guarded(root: Path, endpoint: str) -> pa.Table:
    store = open_store(root)
    store.apply(one_view("s3://guarded/data.parquet", endpoint))
    return store.get_historical_features(entity_df(), ["v:score"]).to_arrow()


def test_denied_access(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_tools: Any
) -> None:
    key, secret = auth_server.keys["stranger"]
    with s3_tools[0](tmp_path):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        with pytest.raises(SourceAccessDenied) as e:
            read_guarded(tmp_path / "r", auth_server.endpoint)
    assert "s3://guarded/data.parquet" in str(e.value)
    assert key not in str(e.value) and secret not in str(e.value)
    assert isinstance(e.value, PermissionError)


def test_a_push_that_may_not_write(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_tools: Any
) -> None:
    key, secret = auth_server.keys["viewer"]
    with s3_tools[0](tmp_path):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        store = open_store(tmp_path / "r")
        store.apply(push_views("s3://guarded/events/", auth_server.endpoint))
        with pytest.raises(SourceAccessDenied) as e:
            store.push("events_push", pushed([1.0], [0]), to=PushMode.OFFLINE)
    assert "s3://guarded/events/part-" in str(e.value)
    assert key not in str(e.value) and secret not in str(e.value)


def test_credentials_from_the_environment(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_tools: Any
) -> None:
    key, secret = auth_server.keys["reader"]
    with s3_tools[0](tmp_path):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        out = read_guarded(tmp_path / "r", auth_server.endpoint)
    assert out.column("score").to_pylist() == [0.5, 0.25, None, 0.5, None, 0.25]


def test_credentials_from_a_profile_file(
    auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_tools: Any
) -> None:
    key, secret = auth_server.keys["reader"]
    bad_key, bad_secret = auth_server.keys["stranger"]
    with s3_tools[0](tmp_path):
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        (tmp_path / "aws-credentials").write_text(
            f"[default]\naws_access_key_id = {bad_key}\naws_secret_access_key = {bad_secret}\n"
            f"[team]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        )
        with pytest.raises(SourceAccessDenied):  # the default profile: the stranger
            read_guarded(tmp_path / "a", auth_server.endpoint)
        monkeypatch.setenv("AWS_PROFILE", "team")
        out = read_guarded(tmp_path / "b", auth_server.endpoint)
    assert out.column("score").to_pylist() == [0.5, 0.25, None, 0.5, None, 0.25]


# --- settings: storage_options, the definition, the registry ----------------------------------


def test_storage_options_sources_and_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_tools: Any
) -> None:
    local = FileSource(path="data/x.parquet", timestamp_field="ts")
    on_s3 = FileSource(path="s3://b/x.parquet", timestamp_field="ts")
    custom = FileSource(
        path="s3://b/x.parquet", timestamp_field="ts", s3_endpoint_override="http://h:9000"
    )
    with s3_tools[0](tmp_path):
        assert storage_options(local) is None
        assert storage_options(on_s3) == {
            "region": "us-east-1",
            "allow_http": "false",
            "access_key_id": KEY_ID,
            "secret_access_key": SECRET,
        }
        monkeypatch.setenv("AWS_SESSION_TOKEN", "tok")
        monkeypatch.setenv("AWS_ENDPOINT_URL", "https://env.example")
        opts = storage_options(on_s3)
        assert opts is not None
        assert opts["endpoint"] == "https://env.example" and opts["session_token"] == "tok"
        opts = storage_options(custom)  # the source's override wins over the environment
        assert opts is not None
        assert opts["endpoint"] == "http://h:9000" and opts["allow_http"] == "true"
        # no keys in the environment: the profile's, and its region from the config file
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
        ):
            monkeypatch.delenv(name)
        (tmp_path / "aws-credentials").write_text(
            "[p]\naws_access_key_id = PK\naws_secret_access_key = PS\n"
        )
        (tmp_path / "aws-config").write_text("[profile p]\nregion = eu-west-3\n")
        monkeypatch.setenv("AWS_PROFILE", "p")
        opts = storage_options(on_s3)
        assert opts is not None
        assert (opts["access_key_id"], opts["secret_access_key"], opts["region"]) == (
            "PK",
            "PS",
            "eu-west-3",
        )
        monkeypatch.setenv("AWS_PROFILE", "nope")
        with pytest.raises(Exception, match="profile 'nope'") as e:
            storage_options(on_s3)
        assert "PK" not in str(e.value) and "PS" not in str(e.value)
        # no credentials anywhere: none passed (the reader's own chain decides)
        monkeypatch.delenv("AWS_PROFILE")
        (tmp_path / "aws-credentials").unlink()
        opts = storage_options(on_s3)
        assert opts is not None and "access_key_id" not in opts


def test_endpoint_override_is_checked_stored_and_shown(s3_bucket: Any, tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="not an s3:// URL"):
        FileSource(path="data/x.parquet", s3_endpoint_override="http://h:9000")
    with pytest.raises(DefinitionError, match="http:// or https://"):
        FileSource(path="s3://b/x", s3_endpoint_override="ftp://h")
    with pytest.raises(DefinitionError, match="credentials"):
        FileSource(path="s3://b/x", s3_endpoint_override="http://user:pw@h:9000")
    s3_bucket.put_parquet("data.parquet", activity_parts()[0])
    store = open_store(tmp_path / "r")
    store.apply(one_view(s3_bucket.url("data.parquet"), s3_bucket.endpoint))
    src = open_store(tmp_path / "r").catalog().data_sources["src"]  # from the registry
    assert isinstance(src, FileSource)
    assert src.path == s3_bucket.url("data.parquet")  # not made repo-relative
    assert src.s3_endpoint_override == s3_bucket.endpoint
    assert store.config.location(src.path) == src.path
    # the same endpoint spelled with a trailing slash is still a change that `plan` lists
    diff = store.plan(one_view(s3_bucket.url("data.parquet"), s3_bucket.endpoint + "/"))
    assert diff.changed == {"data_sources": {"src": ["s3_endpoint_override"]}} or (
        "s3_endpoint_override" in str(diff.changed)
    )
