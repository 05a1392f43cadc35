"""``feature_store.yaml``: typed, validated, with ``${ENV_VAR}`` expansion.

Every mistake is reported as :class:`~banquet.errors.ConfigError` naming the file and the key
(``online_store.port``) and what to write instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types as _pytypes
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from banquet.errors import ConfigError

CONFIG_FILE = "feature_store.yaml"


# --- the schema ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryConfig:
    path: str = "data/registry.db"
    registry_type: Literal["file", "sql"] = "file"
    cache_ttl_seconds: float = 60.0


DEFAULT_MAX_FUTURE_SKEW = "1d"


@dataclass(frozen=True)
class OnlineWriteConfig:
    """Settings every online store shares.

    ``max_future_skew``: a write whose event time lies further ahead of the writer's clock
    than this is refused (a wrongly future-dated value would otherwise win over every real
    one until that date). A duration: seconds as a number, or ``"90s"``, ``"15m"``, ``"6h"``,
    ``"2d"``; ``null`` turns the check off (times past the representable range are still
    refused)."""

    max_future_skew: str | None = DEFAULT_MAX_FUTURE_SKEW

    @property
    def max_future_skew_seconds(self) -> float | None:
        return None if self.max_future_skew is None else parse_duration(self.max_future_skew)


@dataclass(frozen=True)
class SqliteOnlineConfig(OnlineWriteConfig):
    type: Literal["sqlite"] = "sqlite"
    path: str = "data/online_store.db"


@dataclass(frozen=True)
class RedisOnlineConfig(OnlineWriteConfig):
    type: Literal["redis"] = "redis"
    connection_string: str = "localhost:6379"
    redis_type: Literal["redis", "redis_cluster"] = "redis"
    key_ttl_seconds: int | None = None


@dataclass(frozen=True)
class PostgresConnConfig:
    host: str = "localhost"
    port: int = 5432
    database: str = "postgres"
    user: str = "postgres"
    password: str = ""
    db_schema: str = "public"
    sslmode: str | None = None
    min_conn: int = 1
    max_conn: int = 10

    def conninfo(self, application_name: str, **extra: Any) -> str:
        """A libpq connection string for these settings (password and sslmode only when set,
        a 5 s connect timeout) plus ``extra`` libpq parameters."""
        from psycopg.conninfo import make_conninfo

        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "connect_timeout": 5,
            "application_name": application_name,
            **extra,
        }
        if self.password:
            params["password"] = self.password
        if self.sslmode:
            params["sslmode"] = self.sslmode
        return make_conninfo("", **params)


@dataclass(frozen=True)
class PostgresOnlineConfig(PostgresConnConfig, OnlineWriteConfig):
    type: Literal["postgres"] = "postgres"
    # An operation the server has not finished after this long (writes: per 100k rows)
    # fails with StoreUnavailable: libpq itself never gives up on a stalled server.
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class RemoteOnlineConfig(OnlineWriteConfig):
    """``online_store: {type: remote, path: http://host:6566}``: reads go to a feature
    server (banquet's or Feast's) over HTTP (online/remote.py); ``cert``: a CA file for
    https."""

    type: Literal["remote"] = "remote"
    path: str = "http://localhost:6566"
    cert: str = ""
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class FileOfflineConfig:
    type: Literal["file"] = "file"


@dataclass(frozen=True)
class PostgresOfflineConfig(PostgresConnConfig):
    type: Literal["postgres"] = "postgres"


@dataclass(frozen=True)
class SparkOfflineConfig:
    """``offline_store: {type: spark, spark_conf: {spark.master: ..., ...}}`` (Feast's names);
    without ``spark_conf`` an active SparkSession is used."""

    type: Literal["spark"] = "spark"
    spark_conf: dict[str, str] | None = None


@dataclass(frozen=True)
class ServerAuthConfig:
    """``feature_server.auth``: ``no_auth`` (default) or ``token`` (bearer tokens, read at
    server start from the environment variable ``tokens_env``, comma-separated)."""

    type: Literal["no_auth", "token"] = "no_auth"
    tokens_env: str = "BANQUET_SERVER_TOKENS"


@dataclass(frozen=True)
class FeatureServerConfig:
    """``feature_server``: settings of ``banquet serve`` (the CLI flags override them)."""

    auth: ServerAuthConfig = field(default_factory=ServerAuthConfig)
    registry_ttl_sec: float = 5.0
    max_request_bytes: int = 64 * 1024 * 1024
    # A request not answered within this many seconds (store calls and on-demand functions
    # included) gets 504; well under the stores' own socket timeouts.
    request_timeout_seconds: float = 2.0
    max_features_per_request: int = 10_000
    max_entities_per_request: int = 100_000
    # Threads that run reads (store calls, on-demand functions); a worker stuck on a stalled
    # store stays busy until the store's own timeout ends its call.
    worker_threads: int = 8


OnlineConfig = SqliteOnlineConfig | RedisOnlineConfig | PostgresOnlineConfig | RemoteOnlineConfig
OfflineConfig = FileOfflineConfig | PostgresOfflineConfig | SparkOfflineConfig
_ONLINE: dict[str, type] = {
    "sqlite": SqliteOnlineConfig,
    "redis": RedisOnlineConfig,
    "postgres": PostgresOnlineConfig,
    "remote": RemoteOnlineConfig,
}
_OFFLINE: dict[str, type] = {
    "file": FileOfflineConfig,
    "postgres": PostgresOfflineConfig,
    "spark": SparkOfflineConfig,
}


@dataclass(frozen=True)
class ClientAuthConfig:
    """Feast's top-level ``auth:``. ``no_auth`` (Feast's template) is accepted and means
    nothing: banquet's own server is protected by ``feature_server.auth``. Feast's
    ``kubernetes`` / ``oidc`` are refused (ConfigError naming the replacement)."""

    type: Literal["no_auth"] = "no_auth"


@dataclass(frozen=True)
class BatchEngineConfig:
    """Feast's ``batch_engine``: ``local`` (materialization in this process) is what banquet
    does; other engines are refused."""

    type: Literal["local"] = "local"


@dataclass(frozen=True)
class RepoConfig:
    """The parsed ``feature_store.yaml``. ``repo_path`` is the folder it was read from."""

    project: str
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    provider: Literal["local"] = "local"
    online_store: OnlineConfig = field(default_factory=SqliteOnlineConfig)
    offline_store: OfflineConfig = field(default_factory=FileOfflineConfig)
    # 2 (Feast's deprecated form) is accepted: banquet's online store has its own value
    # format, never read by Feast, and keeps keys as version 3 (README, Switching from Feast)
    entity_key_serialization_version: Literal[2, 3] = 3
    auth: ClientAuthConfig = field(default_factory=ClientAuthConfig)
    batch_engine: BatchEngineConfig = field(default_factory=BatchEngineConfig)
    # Feast's flag: naive entity_df times are UTC; banquet always reads them so (True only)
    coerce_tz_aware: Literal[True] = True
    feature_server: FeatureServerConfig = field(default_factory=FeatureServerConfig)
    # Stored on-demand functions run only when trusted (see README "Stored functions"):
    # loaded from this repo's files by this process, pinned here by the SHA-256 of their
    # source (or in $BANQUET_TRUSTED_FUNCTIONS, comma-separated), or everything when
    # trust_registry_code is true.
    trust_registry_code: bool = False
    trusted_functions: list[str] = field(default_factory=list)
    repo_path: Path = Path(".")

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the repo folder unless absolute."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.repo_path / p

    def location(self, path: str) -> str:
        """A data source's location: an ``s3://`` URL as it is, else ``resolve(path)``."""
        return path if path[:5].lower() == "s3://" else str(self.resolve(path))

    @staticmethod
    def from_dict(
        data: Any, *, repo_path: Path | str = ".", source: str = CONFIG_FILE
    ) -> RepoConfig:
        """Validate a mapping as read from YAML (after ``${VAR}`` expansion)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of keys to values at the top level")
        data = _expand_env(data, source, "")
        data = dict(data)
        if "project" not in data:
            raise ConfigError(
                f"{source}: missing required key 'project' (a name for this feature repo)"
            )
        if isinstance(data.get("registry"), str):
            data["registry"] = {"path": data["registry"]}
        data = _feast_aliases(data, source)
        data["online_store"] = _pick(
            data.get("online_store"), _ONLINE, "sqlite", source, "online_store"
        )
        data["offline_store"] = _pick(
            data.get("offline_store"), _OFFLINE, "file", source, "offline_store"
        )
        cfg: RepoConfig = _build(RepoConfig, data, source, "", skip=frozenset({"repo_path"}))
        cfg = dataclasses.replace(cfg, repo_path=Path(repo_path).resolve())
        skew = getattr(cfg.online_store, "max_future_skew", None)
        if skew is not None:
            try:
                parse_duration(skew)
            except ValueError as e:
                raise ConfigError(f"{source}: 'online_store.max_future_skew' {e}") from None
        for h in cfg.trusted_functions:
            if not re.fullmatch(r"[0-9a-f]{64}", h):
                raise ConfigError(
                    f"{source}: 'trusted_functions' holds {h!r}; each entry must be the 64 "
                    "lowercase hex digits of a function's SHA-256 (`banquet functions` lists them)"
                )
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", cfg.project):
            raise ConfigError(
                f"{source}: project {cfg.project!r} must be letters, digits and '_', "
                "starting with a letter"
            )
        return cfg


def _feast_aliases(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Feast's spellings of settings banquet has: ``offline_store: dask|duckdb`` is the
    file store (the same Parquet sources); ``batch_engine: local`` as a string; an
    ``auth:`` type banquet cannot honour named with its replacement."""
    off = data.get("offline_store")
    kind = off if isinstance(off, str) else off.get("type") if isinstance(off, dict) else None
    if kind in ("dask", "duckdb"):
        data["offline_store"] = {"type": "file"}
    if isinstance(data.get("batch_engine"), str):
        data["batch_engine"] = {"type": data["batch_engine"]}
    auth = data.get("auth")
    if isinstance(auth, dict) and auth.get("type") in ("kubernetes", "oidc"):
        raise ConfigError(
            f"{source}: 'auth.type' is {auth['type']!r}; banquet does not authenticate with "
            "Kubernetes or OIDC. Remove 'auth' (or write type: no_auth) and protect `banquet "
            "serve` with feature_server: {auth: {type: token}}"
        )
    return data


def load_config(
    repo_path: str | Path | None = None, config_file: str | Path | None = None
) -> RepoConfig:
    """Read and validate ``feature_store.yaml`` from ``repo_path`` (or ``config_file``).

    The repo folder is ``repo_path`` when given, else the folder of ``config_file``, else the
    current folder.
    """
    import yaml

    path = Path(config_file) if config_file else Path(repo_path or ".") / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such file; run inside a feature repo (`banquet init NAME` makes one) "
            "or pass -c/--chdir or -f/--feature-store-yaml"
        )
    problem = None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        problem = _yaml_problem(e)
    if problem is not None:  # raised here: PyYAML's error quotes the line (a password?)
        raise ConfigError(f"{path}: not valid YAML: {problem}")
    # the repo folder: as given, else the config file's folder, else the current one
    repo = Path(repo_path) if repo_path is not None else path.parent
    return RepoConfig.from_dict(data, repo_path=repo, source=str(path))


def _yaml_problem(e: Exception) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own text spans lines)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or getattr(e, "context", None) or str(e)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(s|m|h|d)?\s*")
_UNIT_SECONDS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"15m"``, ``"6h"``, ``"2d"`` (or a plain number);
    ``ValueError`` for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text >= 0:
        return float(text)
    m = _DURATION.fullmatch(str(text))
    if m is None:
        raise ValueError(
            f"is {text!r}; expected a duration such as 3600, '90s', '15m', '6h' or '2d', or null"
        )
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


# --- validation machinery ------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, source: str, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, source, f"{where}{k}.") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, source, where) for v in value]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{source}: key '{where.rstrip('.')}' uses ${{{name}}} but the environment "
                    f"variable {name} is not set"
                )
            return os.environ[name]

        return _ENV.sub(sub, value)
    return value


def _pick(value: Any, kinds: dict[str, type], default: str, source: str, key: str) -> Any:
    if value is None:
        return kinds[default]()
    if isinstance(value, str):  # Feast allows `online_store: sqlite`? We accept the type name.
        value = {"type": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: '{key}' must be a mapping with a 'type' key")
    kind = value.get("type", default)
    if kind not in kinds:
        raise ConfigError(f"{source}: '{key}.type' is {kind!r}; expected one of {sorted(kinds)}")
    return _build(kinds[kind], value, source, f"{key}.")


def _build(
    cls: type, data: dict[str, Any], source: str, prefix: str, skip: frozenset[str] = frozenset()
) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - skip
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; valid keys here are {sorted(names)}"
        )
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if dataclasses.is_dataclass(value):
            kwargs[f.name] = value
            continue
        kwargs[f.name] = _check(hints[f.name], value, source, f"{prefix}{f.name}")
    return cls(**kwargs)


def _check(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping")
        return _build(hint, value, source, f"{key}.")
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{source}: '{key}' is {value!r}; expected one of {list(allowed)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: '{key}' must be a list, got {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_check(item, v, source, key) for v in value]
    if origin in (Union, _pytypes.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        return _check(hint, value, source, key)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # values from ${ENV} expansion arrive as strings
        try:
            return float(value)
        except ValueError:
            pass
    if hint is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)  # values from ${ENV} expansion arrive as strings
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(hint, type) and (
        not isinstance(value, hint) or isinstance(value, bool) and hint is not bool
    ):
        shown = "" if _is_secret(key) else f" {value!r}"  # a mistyped password stays unshown
        raise ConfigError(
            f"{source}: '{key}' must be of type {hint.__name__}, got {type(value).__name__}{shown}"
        )
    return value


def _is_secret(key: str) -> bool:
    """Keys whose values may hold a password (or a URL with one): never echoed."""
    return key.rpartition(".")[2] in ("password", "connection_string", "path")
