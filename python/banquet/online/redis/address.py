"""The Redis ``connection_string``: ``host:port[,host:port...][,option=value...]`` or a URL,
parsed into a ``RedisAddress``. No error message shows a password, nor any part of the text
that may be one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from banquet.errors import ConfigError
from banquet.redact import redact_text


@dataclass(frozen=True)
class RedisAddress:
    """A parsed ``connection_string``."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a message
    ssl: bool = False
    socket_timeout: float = 10.0
    socket_connect_timeout: float = 5.0
    more_nodes: tuple[tuple[str, int], ...] = ()  # further cluster nodes to start from

    @property
    def nodes(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port), *self.more_nodes)

    def __str__(self) -> str:
        if self.more_nodes:
            return ",".join(hp(h, p) for h, p in self.nodes)
        return f"{hp(self.host, self.port)} (db {self.db})"


def hp(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_OPTIONS = ("db", "username", "password", "ssl", "socket_timeout", "socket_connect_timeout")
_URL_SCHEMES = ("redis", "rediss")


def parse_connection_string(text: str) -> RedisAddress:
    """``"host:port,db=0,username=..,password=..,ssl=true,socket_timeout=10"`` -> address.

    The first comma-separated part is ``host[:port]`` (``[::1]:6379`` for IPv6); further
    ``host:port`` parts name more Redis Cluster nodes to start from; the others are
    ``option=value``. Timeouts are in seconds. A URL works too (redis-py's form):
    ``redis://[[user]:password@]host[:port][/db][?option=value&...]``, ``rediss://`` for TLS.

    No error shows the password, nor any part that may be one (a bare word, a URL's
    user info): they are named by position or redacted.
    """
    where = "online_store.connection_string"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where} is empty; write it as 'host:port' (e.g. 'localhost:6379')")
    if "://" in text:
        return _parse_url(text.strip(), where)
    first, *rest = (p.strip() for p in text.split(","))
    secrets = [p for p in rest if p and "=" not in p and not _looks_like_node(p)]
    host, port = _host_port(first, where, secrets)
    values: dict[str, Any] = {"host": host, "port": port}
    more: list[tuple[str, int]] = []
    for i, part in enumerate(rest, start=2):
        if not part:
            continue
        if "=" not in part and _looks_like_node(part):
            more.append(_host_port(part, where, secrets))
            continue
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not eq:
            raise ConfigError(
                f"{where}: part {i} (not shown: it may be a password) is neither 'host:port' "
                "nor an option; write options as name=value after host:port, e.g. "
                "'localhost:6379,db=0,password=...'"
            )
        if name not in _OPTIONS:
            raise ConfigError(
                f"{where}: unknown option {redact_text(name)!r} (part {i}); valid options are "
                f"{', '.join(_OPTIONS)}"
            )
        values[name] = _option(name, value.strip(), where)
    return RedisAddress(**values, more_nodes=tuple(more))


def _parse_url(text: str, where: str) -> RedisAddress:
    """``redis://[[user]:password@]host[:port][/db][?option=value&...]``."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    shown = redact_text(text, text)
    try:
        u = urlsplit(text)
        port = u.port
    except ValueError:  # a port that is not a number in 0..65535, a broken [ipv6]
        raise ConfigError(
            f"{where}: {shown!r} is not a valid URL (host or port); write it as "
            "redis://:PASSWORD@HOST:PORT/DB or HOST:PORT,password=..."
        ) from None
    scheme = u.scheme.lower()
    if scheme not in _URL_SCHEMES:
        raise ConfigError(
            f"{where}: {shown!r}: the URL scheme must be redis:// or rediss:// (TLS), not "
            f"{scheme}://"
        )
    if not u.hostname:
        raise ConfigError(f"{where}: {shown!r} has no host; write redis://:PASSWORD@HOST:PORT/DB")
    if port == 0:
        raise ConfigError(f"{where}: in {shown!r} the port must be a number from 1 to 65535")
    values: dict[str, Any] = {"host": u.hostname, "port": port or 6379, "ssl": scheme == "rediss"}
    if u.username:
        values["username"] = unquote(u.username)
    if u.password is not None:
        values["password"] = unquote(u.password)
    db = u.path.strip("/")
    if db:
        values["db"] = _option("db", db, where)
    for name, value in parse_qsl(u.query, keep_blank_values=True):
        if name.lower() not in _OPTIONS:
            raise ConfigError(
                f"{where}: unknown URL option {redact_text(name)!r}; valid options are "
                f"{', '.join(_OPTIONS)}"
            )
        values[name.lower()] = _option(name.lower(), value, where)
    return RedisAddress(**values)


def _looks_like_node(part: str) -> bool:
    """``host:port`` or ``[ipv6]:port`` (a bare word is a mistyped option, not a node)."""
    return part.startswith("[") or (":" in part and part.rpartition(":")[2].isdigit())


def _host_port(text: str, where: str, secrets: Sequence[str] = ()) -> tuple[str, int]:
    shown = redact_text(text, *secrets)
    if text.startswith("["):  # [ipv6]:port
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise ConfigError(f"{where}: {shown!r} is not '[ipv6]:port'")
    else:
        host, _, port_text = text.partition(":")
    if "=" in text or "/" in text or "@" in text or ";" in text:
        # a password may be in it: show no part of it
        raise ConfigError(
            f"{where}: the first part (not shown: it may hold a password) is not 'host:port'; "
            "write 'host:port,option=value,...' (e.g. 'localhost:6379,db=0,password=...') or "
            "a URL redis://:PASSWORD@HOST:PORT/DB"
        )
    if not host:
        raise ConfigError(f"{where}: {shown!r} has no host; write it as 'host:port'")
    if not port_text:
        return host, 6379
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        # (the port part may be a password typed after a colon: not shown)
        raise ConfigError(
            f"{where}: the port of {host!r} must be a number from 1 to 65535"
            + ("" if ":" in port_text else f", not {redact_text(port_text, *secrets)!r}")
        )
    return host, int(port_text)


def _option(name: str, value: str, where: str) -> Any:
    if name == "db":
        if not value.isdigit():
            raise ConfigError(f"{where}: db={value!r} must be a database number (0, 1, ...)")
        return int(value)
    if name == "ssl":
        flag = value.lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{where}: ssl={value!r} must be true or false")
        return flag in ("true", "1", "yes")
    if name in ("socket_timeout", "socket_connect_timeout"):
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise ConfigError(f"{where}: {name}={value!r} must be a positive number of seconds")
        return seconds
    return value  # username, password
