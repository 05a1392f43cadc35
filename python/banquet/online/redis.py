"""The Redis online store: one hash per (project, entity key), one field per feature view.

Layout (``online_store: {type: redis, connection_string: "host:port,db=0,..."}``):

* key ``b"<project>:" + serialized entity key`` (``':'`` cannot occur in a project name, so
  one project's keys never match another's prefix);
* field ``b"<view>"``: the value-codec blob;
* field ``b"<view>:ts"``: 16 bytes, the event then the created timestamp (UTC µs), each as a
  big-endian ``u64`` of ``ts + 2**63``, so that bytewise order is numeric order
  (``':'`` cannot occur in a view name either, so this never collides with a view's field).

A read is one round trip: one ``HMGET`` per distinct key, asking for every requested view's
field, all sent together. A write runs a server-side Lua script (``EVALSHA``) over batches of
keys: per key it compares the stored timestamps with the new ones and replaces the blob only
if the new row is not older, so the check and the write are atomic inside Redis;
``key_ttl_seconds`` sets the hash's ``EXPIRE`` on every write that lands. Commands are
RESP-encoded here in bulk and sent on one pooled redis-py connection (redis-py's own
per-argument encoding costs more than Redis takes to run them).
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from banquet.errors import ConfigError, StoreError, StoreUnavailable
from banquet.online.base import OnlineStore

if TYPE_CHECKING:
    import redis

    from banquet.config import RedisOnlineConfig, RepoConfig
    from banquet.feature_view import FeatureView

SCRIPT_KEYS = 500  # keys per EVALSHA call: keeps each script run short (Redis is single-threaded)
SCRIPTS_PER_ROUND_TRIP = 20  # EVALSHA calls sent together, then their replies read
SCAN_COUNT = 1000
_BIAS = 1 << 63
_TS = struct.Struct(">QQ")

# KEYS: the hashes. ARGV: blob field, ts field, ttl seconds (0: none), then per key its
# 16-byte timestamp and its blob. Returns how many keys were written.
_WRITE_LUA = """
local vf, tf, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local written = 0
for i, key in ipairs(KEYS) do
  local ts, blob = ARGV[2 * i + 2], ARGV[2 * i + 3]
  local old = redis.call('HGET', key, tf)
  local newer = true
  if old and #old == 16 then
    for j = 1, 16 do
      local a, b = string.byte(ts, j), string.byte(old, j)
      if a ~= b then
        newer = a > b
        break
      end
    end
  end
  if newer then
    redis.call('HSET', key, vf, blob, tf, ts)
    if ttl > 0 then
      redis.call('EXPIRE', key, ttl)
    end
    written = written + 1
  end
end
return written
"""

_WRITE_SHA = hashlib.sha1(_WRITE_LUA.encode()).hexdigest().encode()


@dataclass(frozen=True)
class RedisAddress:
    """A parsed ``connection_string``."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    socket_timeout: float = 10.0
    socket_connect_timeout: float = 5.0

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (db {self.db})"


_OPTIONS = ("db", "username", "password", "ssl", "socket_timeout", "socket_connect_timeout")


def parse_connection_string(text: str) -> RedisAddress:
    """``"host:port,db=0,username=..,password=..,ssl=true,socket_timeout=10"`` -> address.

    The first comma-separated part is ``host[:port]`` (``[::1]:6379`` for IPv6); the others
    are ``option=value``. Timeouts are in seconds.
    """
    where = "online_store.connection_string"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where} is empty; write it as 'host:port' (e.g. 'localhost:6379')")
    first, *rest = (p.strip() for p in text.split(","))
    host, port = _host_port(first, where)
    values: dict[str, Any] = {"host": host, "port": port}
    for part in rest:
        if not part:
            continue
        name, eq, value = part.partition("=")
        name = name.strip().lower()
        if not eq:
            raise ConfigError(
                f"{where}: {part!r} is not an option; write options as name=value after "
                f"host:port, e.g. 'localhost:6379,db=0,password=secret'"
            )
        if name not in _OPTIONS:
            raise ConfigError(
                f"{where}: unknown option {name!r}; valid options are {', '.join(_OPTIONS)}"
            )
        values[name] = _option(name, value.strip(), where)
    return RedisAddress(**values)


def _host_port(text: str, where: str) -> tuple[str, int]:
    if text.startswith("["):  # [ipv6]:port
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise ConfigError(f"{where}: {text!r} is not '[ipv6]:port'")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ConfigError(f"{where}: {text!r} has no host; write it as 'host:port'")
    if "=" in text or "/" in text:
        raise ConfigError(
            f"{where}: {text!r} is not 'host:port' (the connection string is "
            "'host:port,option=value,...', not a URL)"
        )
    if not port_text:
        return host, 6379
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}: port {port_text!r} must be a number from 1 to 65535")
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


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _evalsha(
    prefix: bytes,
    head: list[bytes],
    keys: Sequence[bytes],
    event_ts: Sequence[int],
    created_ts: Sequence[int],
    blobs: Sequence[bytes],
) -> bytes:
    """``EVALSHA <write script> n <prefixed keys> <head> (<ts16> <blob>)*`` as RESP."""
    n = len(keys)
    pack = _TS.pack
    lp = len(prefix)
    parts = [b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + 3 * n + len(head)), _bulk(_WRITE_SHA)]
    parts.append(_bulk(b"%d" % n))
    parts.extend([b"$%d\r\n%b%b\r\n" % (lp + len(k), prefix, k) for k in keys])
    parts.extend([_bulk(h) for h in head])
    parts.extend(
        [
            b"$16\r\n%b\r\n$%d\r\n%b\r\n" % (pack(e + _BIAS, c + _BIAS), len(v), v)
            for e, c, v in zip(event_ts, created_ts, blobs)
        ]
    )
    return b"".join(parts)


def _prefix(project: str) -> bytes:
    return project.encode() + b":"


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out += b"\\"
        out.append(b)
    return bytes(out)


class RedisOnlineStore(OnlineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        cfg: RedisOnlineConfig = config.online_store  # type: ignore[assignment]
        if cfg.redis_type != "redis":
            raise ConfigError(
                f"online_store.redis_type {cfg.redis_type!r} is not supported yet; use "
                "redis_type: redis (a single Redis server)"
            )
        self.address = parse_connection_string(cfg.connection_string)
        ttl = cfg.key_ttl_seconds
        if ttl is not None and ttl < 0:
            raise ConfigError(f"online_store.key_ttl_seconds must not be negative, got {ttl}")
        self.key_ttl_seconds = ttl or 0
        self._client: redis.Redis | None = None

    # --- connection ------------------------------------------------------------------------

    def client(self) -> redis.Redis:
        if self._client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            a = self.address
            self._client = redis.Redis(
                host=a.host,
                port=a.port,
                db=a.db,
                username=a.username,
                password=a.password,
                ssl=a.ssl,
                socket_timeout=a.socket_timeout,
                socket_connect_timeout=a.socket_connect_timeout,
                # one immediate retry (a pooled connection the server closed); never a
                # backoff loop that would make a dead server look like a hang
                retry=Retry(NoBackoff(), 1),
                health_check_interval=30,
            )
        return self._client

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.AuthenticationError, redis.exceptions.AuthorizationError) as e:
            raise StoreError(f"Redis online store at {self.address}: {what}: {e}") from None
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise StoreUnavailable(
                f"Redis online store at {self.address} is unavailable ({what}): {e}"
            ) from None
        except redis.RedisError as e:
            raise StoreError(f"Redis online store at {self.address}: {what}: {e}") from None

    # --- the interface ---------------------------------------------------------------------

    def create_view(self, project: str, view: FeatureView) -> None:
        # Fields appear when written; nothing to create. Check the server answers, so that
        # `apply` reports an unreachable store rather than the first materialization.
        with self._errors("ping"):
            self.client().ping()

    def drop_view(self, project: str, view_name: str) -> None:
        self.__dict__.get("_ensured", set()).discard((project, view_name))
        fields = (view_name.encode(), view_name.encode() + b":ts")
        with self._errors(f"drop feature view {view_name!r}"):
            self._each_key_batch(project, lambda pipe, keys: [pipe.hdel(k, *fields) for k in keys])

    def teardown(self, project: str) -> None:
        with self._errors(f"teardown of project {project!r}"):
            self._each_key_batch(project, lambda pipe, keys: pipe.unlink(*keys))

    def _each_key_batch(self, project: str, action: Any) -> None:
        """SCAN this project's keys; run ``action(pipeline, keys)`` per batch."""
        client = self.client()
        pattern = _glob_escape(_prefix(project)) + b"*"
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor, match=pattern, count=SCAN_COUNT)
            if keys:
                pipe = client.pipeline(transaction=False)
                action(pipe, keys)
                pipe.execute()
            if cursor == 0:
                return

    def write(
        self,
        project: str,
        view_name: str,
        keys: Sequence[bytes],
        event_ts: Sequence[int],
        created_ts: Sequence[int],
        blobs: Sequence[bytes],
    ) -> None:
        if not len(keys):
            return
        from redis.exceptions import NoScriptError

        prefix = _prefix(project)
        head = [view_name.encode(), view_name.encode() + b":ts", b"%d" % self.key_ttl_seconds]
        try:
            calls = [
                _evalsha(
                    prefix,
                    head,
                    keys[lo : lo + SCRIPT_KEYS],
                    event_ts[lo : lo + SCRIPT_KEYS],
                    created_ts[lo : lo + SCRIPT_KEYS],
                    blobs[lo : lo + SCRIPT_KEYS],
                )
                for lo in range(0, len(keys), SCRIPT_KEYS)
            ]
        except TypeError:
            raise StoreError(
                f"feature view {view_name!r}: keys and values to write must be bytes "
                "(a value is None?)"
            ) from None
        with self._errors(f"write to feature view {view_name!r}"):
            for lo in range(0, len(calls), SCRIPTS_PER_ROUND_TRIP):
                group = calls[lo : lo + SCRIPTS_PER_ROUND_TRIP]
                try:
                    self._roundtrip(b"".join(group), len(group))
                except NoScriptError:  # a new server, or its scripts were flushed: load, resend
                    self.client().script_load(_WRITE_LUA)  # (rerunning is harmless)
                    self._roundtrip(b"".join(group), len(group))

    def _roundtrip(self, payload: bytes, replies: int) -> list[Any]:
        """Send RESP-encoded commands on one pooled connection; read their ``replies``.

        Commands are encoded here, in bulk: redis-py's per-command encoding would cost more
        than Redis takes to run them. The first error reply is raised after every reply has
        been read (so the connection stays in step); a broken connection is dropped."""
        from redis.exceptions import ResponseError

        pool = self.client().connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command([payload])
            out: list[Any] = []
            error: ResponseError | None = None
            for _ in range(replies):
                try:
                    out.append(conn.read_response())
                except ResponseError as e:
                    error = error or e
                    out.append(None)
            if error is not None:
                raise error
            return out
        except ResponseError:
            raise
        except BaseException:
            conn.disconnect()  # unread replies (a timeout, Ctrl-C): never reuse it
            raise
        finally:
            pool.release(conn)

    def read(
        self, project: str, requests: Sequence[tuple[str, Sequence[bytes]]]
    ) -> list[list[bytes | None]]:
        prefix = _prefix(project)
        fields = [view.encode() for view, _ in requests]
        if len(requests) == 1 or all(keys is requests[0][1] for _, keys in requests):
            # The usual case: every view asks for the same keys: one HMGET per key, all fields.
            keys = requests[0][1] if requests else []
            if not keys:
                return [[] for _ in requests]
            tail = b"".join(_bulk(f) for f in fields)
            cmd = b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2)
            payload = b"".join(cmd + _bulk(prefix + k) + tail for k in keys)
            with self._errors("read"):
                rows = self._roundtrip(payload, len(keys))
            return [[row[i] for row in rows] for i in range(len(fields))]
        # Views keyed by different entities: the fields wanted per distinct key.
        wanted: dict[bytes, list[int]] = {}
        for i, (_, keys) in enumerate(requests):
            for k in keys:
                views = wanted.setdefault(k, [])
                if not views or views[-1] != i:
                    views.append(i)
        if not wanted:
            return [[] for _ in requests]
        payload = b"".join(
            b"*%d\r\n$5\r\nHMGET\r\n" % (len(views) + 2)
            + _bulk(prefix + k)
            + b"".join(_bulk(fields[i]) for i in views)
            for k, views in wanted.items()
        )
        with self._errors("read"):
            replies = self._roundtrip(payload, len(wanted))
        found: list[dict[bytes, bytes | None]] = [{} for _ in requests]
        for (k, views), values in zip(wanted.items(), replies):
            for i, v in zip(views, values):
                found[i][k] = v
        return [[f[k] for k in keys] for f, (_, keys) in zip(found, requests)]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
