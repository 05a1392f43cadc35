"""``feature_store.yaml``: parsing, defaults, every store type, ``${ENV}`` expansion, and errors
that name both the key and the file."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from banquet.config import (
    FileOfflineConfig,
    PostgresOfflineConfig,
    PostgresOnlineConfig,
    RedisOnlineConfig,
    RegistryConfig,
    RepoConfig,
    SqliteOnlineConfig,
    load_config,
)
from banquet.errors import BanquetError, ConfigError


def _write(folder: Path, text: str, name: str = "feature_store.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _error(tmp_path: Path, text: str) -> tuple[str, Path]:
    """Load ``text`` as feature_store.yaml; return the ConfigError's message and the path."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    assert "\n" not in message, "errors must be one line"
    return message, path


# --- defaults and shapes -----------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    _write(tmp_path, "project: my_project\n")
    cfg = load_config(tmp_path)
    assert cfg.project == "my_project"
    assert cfg.registry == RegistryConfig(
        path="data/registry.db", registry_type="file", cache_ttl_seconds=60.0
    )
    assert cfg.provider == "local"
    assert cfg.online_store == SqliteOnlineConfig(type="sqlite", path="data/online_store.db")
    assert cfg.offline_store == FileOfflineConfig(type="file")
    assert cfg.entity_key_serialization_version == 3
    assert cfg.repo_path == tmp_path.resolve()
    assert cfg.resolve(cfg.registry.path) == tmp_path.resolve() / "data" / "registry.db"


def test_full_local_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """\
        # a comment
        project: shop
        registry: reg/registry.json
        provider: local
        online_store:
          type: sqlite
          path: /var/tmp/online.db
        offline_store:
          type: file
        entity_key_serialization_version: 3
        """,
    )
    cfg = load_config(tmp_path)
    assert cfg.registry.path == "reg/registry.json" and cfg.registry.registry_type == "file"
    assert cfg.online_store == SqliteOnlineConfig(path="/var/tmp/online.db")
    assert cfg.resolve(cfg.online_store.path) == Path("/var/tmp/online.db")  # absolute stays


def test_from_dict_directly(tmp_path: Path) -> None:
    cfg = RepoConfig.from_dict({"project": "p"}, repo_path=tmp_path)
    assert cfg.repo_path == tmp_path.resolve()
    assert isinstance(cfg.online_store, SqliteOnlineConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.project = "q"  # type: ignore[misc]


def test_registry_as_string(tmp_path: Path) -> None:
    cfg = RepoConfig.from_dict({"project": "p", "registry": "x/registry.db"})
    assert cfg.registry == RegistryConfig(path="x/registry.db")


def test_registry_as_mapping() -> None:
    cfg = RepoConfig.from_dict(
        {
            "project": "p",
            "registry": {"registry_type": "file", "path": "r.db", "cache_ttl_seconds": 5},
        }
    )
    assert cfg.registry == RegistryConfig(path="r.db", registry_type="file", cache_ttl_seconds=5.0)
    assert isinstance(cfg.registry.cache_ttl_seconds, float)
    sql = RepoConfig.from_dict(
        {"project": "p", "registry": {"registry_type": "sql", "path": "postgresql://h/db"}}
    )
    assert sql.registry.registry_type == "sql"
    assert RepoConfig.from_dict({"project": "p", "registry": {}}).registry == RegistryConfig()


def test_tilde_in_paths_is_expanded(tmp_path: Path) -> None:
    cfg = RepoConfig.from_dict({"project": "p"}, repo_path=tmp_path)
    assert cfg.resolve("~/x.db") == Path.home() / "x.db"


# --- store types -------------------------------------------------------------------------------


def test_online_sqlite() -> None:
    cfg = RepoConfig.from_dict({"project": "p", "online_store": {"type": "sqlite", "path": "o.db"}})
    assert cfg.online_store == SqliteOnlineConfig(path="o.db")
    # without a type the default (sqlite) is meant
    assert RepoConfig.from_dict(
        {"project": "p", "online_store": {"path": "o.db"}}
    ).online_store == SqliteOnlineConfig(path="o.db")


def test_online_redis() -> None:
    cfg = RepoConfig.from_dict(
        {
            "project": "p",
            "online_store": {
                "type": "redis",
                "connection_string": "10.0.0.1:6380,password=x",
                "redis_type": "redis_cluster",
                "key_ttl_seconds": 3600,
            },
        }
    )
    assert cfg.online_store == RedisOnlineConfig(
        connection_string="10.0.0.1:6380,password=x",
        redis_type="redis_cluster",
        key_ttl_seconds=3600,
    )
    assert (
        RepoConfig.from_dict({"project": "p", "online_store": "redis"}).online_store
        == RedisOnlineConfig()
    )
    assert RedisOnlineConfig().key_ttl_seconds is None


POSTGRES = {
    "host": "db.example.com",
    "port": 6543,
    "database": "features",
    "user": "feast",
    "password": "secret",
    "db_schema": "fs",
    "sslmode": "require",
    "min_conn": 2,
    "max_conn": 20,
}


def test_online_postgres() -> None:
    cfg = RepoConfig.from_dict({"project": "p", "online_store": {"type": "postgres", **POSTGRES}})
    assert cfg.online_store == PostgresOnlineConfig(**POSTGRES)  # type: ignore[arg-type]
    dflt = RepoConfig.from_dict({"project": "p", "online_store": {"type": "postgres"}}).online_store
    assert isinstance(dflt, PostgresOnlineConfig)
    assert (dflt.host, dflt.port, dflt.database, dflt.db_schema, dflt.sslmode) == (
        "localhost",
        5432,
        "postgres",
        "public",
        None,
    )


def test_offline_stores() -> None:
    assert (
        RepoConfig.from_dict({"project": "p", "offline_store": {"type": "file"}}).offline_store
        == FileOfflineConfig()
    )
    assert (
        RepoConfig.from_dict({"project": "p", "offline_store": "file"}).offline_store
        == FileOfflineConfig()
    )
    cfg = RepoConfig.from_dict({"project": "p", "offline_store": {"type": "postgres", **POSTGRES}})
    assert cfg.offline_store == PostgresOfflineConfig(**POSTGRES)  # type: ignore[arg-type]


def test_postgres_everywhere_from_a_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """\
        project: p
        registry:
          registry_type: file
          path: data/registry.db
          cache_ttl_seconds: 0
        online_store:
          type: postgres
          host: 127.0.0.1
          port: 55432
          database: banquet
          user: banquet
          password: banquet
        offline_store:
          type: postgres
          host: 127.0.0.1
          port: 55432
          database: banquet
          user: banquet
          password: banquet
          db_schema: offline
        """,
    )
    cfg = load_config(tmp_path)
    assert cfg.registry.cache_ttl_seconds == 0.0
    assert isinstance(cfg.online_store, PostgresOnlineConfig) and cfg.online_store.port == 55432
    assert (
        isinstance(cfg.offline_store, PostgresOfflineConfig)
        and cfg.offline_store.db_schema == "offline"
    )


# --- ${ENV_VAR} expansion ----------------------------------------------------------------------


def test_env_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BQ_TEST_HOST", "pg.internal")
    monkeypatch.setenv("BQ_TEST_PORT", "6432")
    monkeypatch.setenv("BQ_TEST_PASSWORD", "s3cr${x}et")
    monkeypatch.setenv("BQ_TEST_TTL", "2.5")
    monkeypatch.setenv("BQ_TEST_PROJECT", "from_env")
    monkeypatch.setenv("BQ_TEST_DIR", "state")
    _write(
        tmp_path,
        """\
        project: ${BQ_TEST_PROJECT}
        registry:
          path: ${BQ_TEST_DIR}/registry.db
          cache_ttl_seconds: ${BQ_TEST_TTL}
        online_store:
          type: postgres
          host: ${BQ_TEST_HOST}
          port: ${BQ_TEST_PORT}
          password: "${BQ_TEST_PASSWORD}"
          user: "u_${BQ_TEST_PROJECT}_${BQ_TEST_DIR}"
        """,
    )
    cfg = load_config(tmp_path)
    assert cfg.project == "from_env"
    assert cfg.registry.path == "state/registry.db"
    assert cfg.registry.cache_ttl_seconds == 2.5
    online = cfg.online_store
    assert isinstance(online, PostgresOnlineConfig)
    assert online.host == "pg.internal"
    assert online.port == 6432 and isinstance(online.port, int)
    assert online.password == "s3cr${x}et"  # expanded once, not recursively
    assert online.user == "u_from_env_state"


def test_env_expansion_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BQ_TEST_UNSET", raising=False)
    message, path = _error(
        tmp_path,
        """\
        project: p
        online_store:
          type: redis
          connection_string: ${BQ_TEST_UNSET}
        """,
    )
    assert str(path) in message
    assert "online_store.connection_string" in message
    assert "BQ_TEST_UNSET" in message and "not set" in message


def test_env_expansion_empty_value_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BQ_TEST_EMPTY", "")
    _write(tmp_path, "project: p\nonline_store: {type: postgres, password: '${BQ_TEST_EMPTY}'}\n")
    assert load_config(tmp_path).online_store.password == ""  # type: ignore[union-attr]


def test_env_value_of_wrong_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BQ_TEST_PORT", "not-a-port")
    message, path = _error(
        tmp_path, "project: p\nonline_store: {type: postgres, port: '${BQ_TEST_PORT}'}\n"
    )
    assert str(path) in message and "online_store.port" in message and "int" in message


# --- errors name the key and the file ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("project: p\nregistery: r.db\n", "registery"),
        ("project: p\nrepo_path: /x\n", "repo_path"),
        ("project: p\nregistry: {path: r.db, ttl: 5}\n", "registry.ttl"),
        ("project: p\nonline_store: {type: sqlite, host: x}\n", "online_store.host"),
        ("project: p\nonline_store: {type: redis, path: x}\n", "online_store.path"),
        ("project: p\noffline_store: {type: file, path: x}\n", "offline_store.path"),
        ("project: p\noffline_store: {type: postgres, hostname: x}\n", "offline_store.hostname"),
    ],
)
def test_unknown_key(tmp_path: Path, text: str, key: str) -> None:
    message, path = _error(tmp_path, text)
    assert str(path) in message
    assert f"unknown key '{key}'" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("project: p\nonline_store: {type: postgres, port: five}\n", "online_store.port"),
        ("project: p\nonline_store: {type: postgres, port: true}\n", "online_store.port"),
        ("project: p\nonline_store: {type: postgres, port: 5.5}\n", "online_store.port"),
        (
            "project: p\nonline_store: {type: redis, key_ttl_seconds: [1]}\n",
            "online_store.key_ttl_seconds",
        ),
        ("project: p\nregistry: {cache_ttl_seconds: soon}\n", "registry.cache_ttl_seconds"),
        ("project: p\nregistry: {cache_ttl_seconds: false}\n", "registry.cache_ttl_seconds"),
        ("project: p\nregistry: {path: [a, b]}\n", "registry.path"),
        ("project: p\nregistry: 5\n", "registry"),
        ("project: p\nonline_store: [sqlite]\n", "online_store"),
        ("project: [a]\n", "project"),
        ("project: p\nentity_key_serialization_version: 1\n", "entity_key_serialization_version"),
        ("project: p\nprovider: gcp\n", "provider"),
        ("project: p\nregistry: {registry_type: s3}\n", "registry.registry_type"),
        (
            "project: p\nonline_store: {type: redis, redis_type: sentinel}\n",
            "online_store.redis_type",
        ),
    ],
)
def test_wrong_type_or_value(tmp_path: Path, text: str, key: str) -> None:
    message, path = _error(tmp_path, text)
    assert str(path) in message
    assert f"'{key}'" in message


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("project: p\nonline_store: {type: dynamodb}\n", "online_store.type", "'dynamodb'"),
        ("project: p\nonline_store: dynamodb\n", "online_store.type", "'dynamodb'"),
        ("project: p\noffline_store: {type: bigquery}\n", "offline_store.type", "'bigquery'"),
        ("project: p\noffline_store: {type: sqlite}\n", "offline_store.type", "'sqlite'"),
    ],
)
def test_bad_store_type(tmp_path: Path, text: str, key: str, expected: str) -> None:
    message, path = _error(tmp_path, text)
    assert str(path) in message
    assert f"'{key}'" in message and expected in message
    assert "expected one of" in message


def test_missing_project(tmp_path: Path) -> None:
    message, path = _error(tmp_path, "registry: data/registry.db\n")
    assert str(path) in message and "'project'" in message


@pytest.mark.parametrize("project", ["my-project", "1st", "a b", "'café'"])
def test_bad_project_name(tmp_path: Path, project: str) -> None:
    message, path = _error(tmp_path, f"project: {project}\n")
    assert str(path) in message and "project" in message


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just a string\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    message, path = _error(tmp_path, text)
    assert str(path) in message and "mapping" in message


@pytest.mark.parametrize(
    "text",
    [
        "project: p\nonline_store: [\n",
        "project: p\n  bad: indent\n",
        "project: 'unterminated\n",
        "a: b: c\n",
    ],
)
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    message, path = _error(tmp_path, text)
    assert str(path) in message and "YAML" in message
    assert "line" in message  # says where


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="feature_store.yaml: no such file") as info:
        load_config(tmp_path)
    assert isinstance(info.value, BanquetError) and isinstance(info.value, ValueError)
    assert "banquet init" in str(info.value)


def test_from_dict_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^custom\.yaml: unknown key 'nope'"):
        RepoConfig.from_dict({"project": "p", "nope": 1}, source="custom.yaml")
    with pytest.raises(ConfigError, match=r"^feature_store\.yaml: missing required key 'project'"):
        RepoConfig.from_dict({})


# --- other file names and folders --------------------------------------------------------------


def test_config_file_elsewhere(tmp_path: Path) -> None:
    path = _write(tmp_path / "conf", "project: other\n", name="prod.yaml")
    cfg = load_config(tmp_path, path)
    assert cfg.project == "other"
    assert cfg.repo_path == tmp_path.resolve()  # an explicit repo folder wins
    assert load_config(config_file=path).repo_path == (tmp_path / "conf").resolve()
    message = str(pytest.raises(ConfigError, load_config, tmp_path, tmp_path / "nope.yaml").value)
    assert str(tmp_path / "nope.yaml") in message


def test_config_file_errors_name_that_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "project: p\nbogus: 1\n", name="staging.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, path)
    assert str(path) in str(info.value) and "'bogus'" in str(info.value)
