"""The Redis online store: one hash per (project, entity key), one field per feature view.

Layout (``online_store: {type: redis, connection_string: "host:port,db=0,..."}``):

* key ``b"<project>:" + serialized entity key`` (``':'`` cannot occur in a project name, so
  one project's keys never match another's prefix);
* field ``b"<view>"``: a 16-byte stamp, then the value-codec blob. The stamp is the event
  then the created timestamp (UTC µs), each as a big-endian ``u64`` of ``ts + 2**63``, so
  that bytewise order is numeric order. (One field per view, not a separate timestamp
  field: every hash field costs Redis ~60 bytes of bookkeeping.)

A read is one round trip: one ``HMGET`` per distinct key, asking for every requested view's
field, all sent together. A write runs a server-side Lua script (``EVALSHA``) over batches of
keys: per key it compares the stored timestamps with the new ones and replaces the blob only
if the new row is not older, so the check and the write are atomic inside Redis;
``key_ttl_seconds`` sets the hash's ``EXPIRE`` on every write that lands. Commands are
RESP-encoded here in bulk and sent on pooled raw sockets, replies parsed here (redis-py's
per-command encoding and pool checkout cost more CPU than Redis takes to run them); redis-py
serves the rare commands (SCAN, SCRIPT LOAD, CLUSTER SLOTS).

``redis_type: redis_cluster`` (``connection_string: "host:port,host:port,...,password=.."``):
the slot map (``CLUSTER SLOTS``) is read once; a request's keys are split per node by slot,
each node gets its commands in one pipeline, all nodes are sent to before any reply is read
(one round trip's latency), and the replies are merged back in key order. A script call's
keys must share a slot, so writes make one call per slot, pipelined per node. A moved slot
or a failed node re-reads the slot map and retries once (every operation is idempotent).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import socket
import struct
import threading
from binascii import crc_hqx
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from banquet import _core
from banquet.errors import ConfigError, StoreError, StoreUnavailable
from banquet.online.base import OnlineStore
from banquet.redact import redact_text

if TYPE_CHECKING:
    import pyarrow as pa
    import redis

    from banquet.config import RedisOnlineConfig, RepoConfig
    from banquet.feature_view import FeatureView

T = TypeVar("T")

SCRIPT_KEYS = 500  # keys per EVALSHA call: keeps each script run short (Redis is single-threaded)
KEYS_PER_ROUND_TRIP = 10_000  # script calls sent together (per node), then their replies read
SCAN_COUNT = 1000
SLOTS = 16384  # Redis Cluster hash slots
_BIAS = 1 << 63
_TS = struct.Struct(">QQ")

# KEYS: the hashes. ARGV: the view's field, ttl seconds (0: none), overwrite ('1': replace
# whatever is stored, the way to correct a future-dated value; '0': keep the newer), then
# per key its value (16-byte stamp + blob). Returns how many keys were written.
_WRITE_LUA = """
local field, ttl, overwrite = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local unpack = struct.unpack
local written = 0
for i, key in ipairs(KEYS) do
  local new = ARGV[i + 3]
  local old = (not overwrite) and redis.call('HGET', key, field)
  local newer = true
  if old and #old >= 16 then
    -- bytewise order of the two 16-byte stamps, as four exact unsigned 32-bit numbers
    local a1, a2, a3, a4 = unpack('>I4I4I4I4', new)
    local b1, b2, b3, b4 = unpack('>I4I4I4I4', old)
    if a1 ~= b1 then newer = a1 > b1
    elseif a2 ~= b2 then newer = a2 > b2
    elseif a3 ~= b3 then newer = a3 > b3
    else newer = a4 >= b4 end
  end
  if newer then
    redis.call('HSET', key, field, new)
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
            return ",".join(_hp(h, p) for h, p in self.nodes)
        return f"{_hp(self.host, self.port)} (db {self.db})"


def _hp(host: str, port: int) -> str:
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
    """``EVALSHA <write script> n <prefixed keys> <head> (<stamp16 + blob>)*`` as RESP."""
    n = len(keys)
    pack = _TS.pack
    lp = len(prefix)
    parts = [b"*%d\r\n$7\r\nEVALSHA\r\n" % (3 + 2 * n + len(head)), _bulk(_WRITE_SHA)]
    parts.append(_bulk(b"%d" % n))
    parts.extend([b"$%d\r\n%b%b\r\n" % (lp + len(k), prefix, k) for k in keys])
    parts.extend([_bulk(h) for h in head])
    parts.extend(
        [
            b"$%d\r\n%b%b\r\n" % (16 + len(v), pack(e + _BIAS, c + _BIAS), v)
            for e, c, v in zip(event_ts, created_ts, blobs)
        ]
    )
    return b"".join(parts)


def encode_script_calls(
    prefix: bytes,
    head: list[bytes],
    keys: Sequence[bytes],
    event_ts: Sequence[int],
    created_ts: Sequence[int],
    blobs: Sequence[bytes],
) -> tuple[bytes, int]:
    """The write script calls for these rows, ``SCRIPT_KEYS`` rows a call, as one RESP
    buffer; and the number of calls. Encoded in Rust when the rows come as lists (Python's
    per-row formatting costs more than Redis takes to run the scripts)."""
    fast = getattr(_core, "resp_evalsha", None)
    if fast is not None and type(keys) is list and type(blobs) is list:
        payload, calls = fast(
            _WRITE_SHA, prefix, head, keys, event_ts, created_ts, blobs, SCRIPT_KEYS
        )
        return payload, calls
    parts = [
        _evalsha(
            prefix,
            head,
            keys[i : i + SCRIPT_KEYS],
            event_ts[i : i + SCRIPT_KEYS],
            created_ts[i : i + SCRIPT_KEYS],
            blobs[i : i + SCRIPT_KEYS],
        )
        for i in range(0, len(keys), SCRIPT_KEYS)
    ]
    return b"".join(parts), len(parts)


def key_slot(key: bytes) -> int:
    """The Redis Cluster slot of ``key``: CRC16 of the key, or of its ``{hash tag}``."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % SLOTS


def _prefix(project: str) -> bytes:
    return project.encode() + b":"


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out += b"\\"
        out.append(b)
    return bytes(out)


class _Uncovered(Exception):
    """A key hashes to a cluster slot that no node serves (the cluster is down or changing)."""


class _Conn:
    """One socket to one Redis server, speaking RESP directly: the hot paths send commands
    encoded in bulk and parse the replies here (redis-py's pool checkout and reply parsing
    cost more CPU per request than the round trip itself). Used by one thread at a time."""

    __slots__ = ("buf", "pos", "sock")

    def __init__(self, address: RedisAddress, host: str, port: int) -> None:
        import redis

        try:
            sock = socket.create_connection((host, port), timeout=address.socket_connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if address.ssl:
                import ssl

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.settimeout(address.socket_timeout)
        except TimeoutError as e:
            raise redis.TimeoutError(f"connecting to {_hp(host, port)}: timed out") from e
        except OSError as e:
            raise redis.ConnectionError(f"connecting to {_hp(host, port)}: {e}") from e
        self.sock = sock
        self.buf = b""
        self.pos = 0
        hello = []
        if address.password is not None:
            user = [address.username.encode()] if address.username else []
            hello.append(_command([b"AUTH", *user, address.password.encode()]))
        if address.db:
            hello.append(_command([b"SELECT", b"%d" % address.db]))
        if hello:
            try:
                replies = self.exchange(b"".join(hello), len(hello))
            except BaseException:
                self.close()
                raise
            for r in replies:
                if isinstance(r, Exception):
                    self.close()
                    raise redis.AuthenticationError(str(r))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def exchange(self, payload: bytes, replies: int) -> list[Any]:
        self.send(payload)
        return self.receive(replies)

    def send(self, payload: bytes) -> None:
        import redis

        try:
            self.sock.sendall(payload)
        except TimeoutError as e:
            raise redis.TimeoutError("timed out sending") from e
        except OSError as e:
            raise redis.ConnectionError(f"sending: {e}") from e

    def receive(self, replies: int) -> list[Any]:
        """``replies`` replies; an error reply is returned as its exception (not raised)."""
        out = []
        for _ in range(replies):
            while True:
                try:
                    value, self.pos = _parse(self.buf, self.pos)
                    break
                except _Incomplete:
                    self._fill()
            out.append(value)
        if self.pos == len(self.buf):
            self.buf, self.pos = b"", 0
        return out

    def receive_flags(self, replies: int) -> bytes | None:
        """The digits (``b"0"``/``b"1"``) of ``replies`` integer replies of 0 or 1, checked
        in bulk; None, with nothing consumed, when another reply is among them (an error:
        read them with ``receive``). Every other reply is longer than 4 bytes, so waiting
        for 4 bytes per reply never waits for more than the server sends."""
        need = 4 * replies
        while len(self.buf) - self.pos < need:
            self._fill()
        chunk = self.buf[self.pos : self.pos + need]
        if chunk[0::4] != b":" * replies or chunk[2::4] != b"\r" * replies:
            return None
        digits = chunk[1::4]
        if digits.strip(b"01"):
            return None
        self.pos += need
        if self.pos == len(self.buf):
            self.buf, self.pos = b"", 0
        return digits

    def _fill(self) -> None:
        import redis

        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError as e:
            raise redis.TimeoutError("timed out waiting for the reply") from e
        except OSError as e:
            raise redis.ConnectionError(f"reading: {e}") from e
        if not data:
            raise redis.ConnectionError("connection closed by the server")
        self.buf = self.buf[self.pos :] + data if self.buf else data
        self.pos = 0


class _Incomplete(Exception):
    pass


def _parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from ``buf[pos:]``: (value, end), or _Incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        stop = end + 2 + n
        if stop + 2 > len(buf):
            raise _Incomplete
        return buf[end + 2 : stop], stop + 2
    if kind == 42:  # * array
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        items = []
        pos = end + 2
        for _ in range(n):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 43:  # + simple string
        return buf[pos + 1 : end], end + 2
    if kind == 45:  # - error
        return _error(buf[pos + 1 : end].decode("utf-8", "replace")), end + 2
    from redis.exceptions import InvalidResponse

    raise InvalidResponse(f"unexpected RESP reply type byte {kind!r}")


def _error(text: str) -> Exception:
    """The redis-py exception for an error reply (NOSCRIPT, MOVED, ...)."""
    try:
        from redis._parsers.base import BaseParser

        return BaseParser.parse_error(text)  # type: ignore[no-any-return]
    except ImportError:  # redis-py moved it: a plain error still names the problem
        from redis.exceptions import ResponseError

        return ResponseError(text)


def _command(args: Sequence[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


def _cluster_changing(e: Exception) -> bool:
    """A failed node, a moved slot or a cluster in flux: worth re-reading the slot map."""
    import redis
    from redis.exceptions import AskError, ClusterDownError, TryAgainError

    return isinstance(
        e,
        (redis.ConnectionError, redis.TimeoutError, AskError, TryAgainError)
        + (ClusterDownError, _Uncovered),
    ) and not isinstance(e, redis.AuthenticationError)


def _pop(idle: list[_Conn]) -> _Conn | None:
    try:
        return idle.pop()
    except IndexError:  # another thread took the last one
        return None


class _StaleConnection(Exception):
    """A reused connection failed before any reply: the server closed it meanwhile."""


class _Node:
    """One Redis server: its address (for messages), a redis-py client for the occasional
    command (SCAN, SCRIPT LOAD, ...) and idle raw connections for the hot paths."""

    __slots__ = ("client", "host", "idle", "name", "port", "script_loaded")

    def __init__(self, name: str, client: redis.Redis, host: str, port: int) -> None:
        self.script_loaded = False  # the write script, loaded by this process
        self.name = name
        self.client = client
        self.host = host
        self.port = port
        self.idle: list[_Conn] = []  # list.pop / append are atomic: no lock needed

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


@dataclass(frozen=True)
class _Topology:
    nodes: list[_Node]  # the primaries (one for a single server)
    slots: list[_Node | None] | None  # cluster: the node serving each slot; None: one server


class RedisOnlineStore(OnlineStore):
    def __init__(self, config: RepoConfig) -> None:
        super().__init__(config)
        cfg: RedisOnlineConfig = config.online_store  # type: ignore[assignment]
        if cfg.redis_type not in ("redis", "redis_cluster"):
            raise ConfigError(
                f"online_store.redis_type {cfg.redis_type!r} is unknown; use redis (one "
                "server) or redis_cluster"
            )
        self.cluster = cfg.redis_type == "redis_cluster"
        self.address = parse_connection_string(cfg.connection_string)
        if self.address.more_nodes and not self.cluster:
            raise ConfigError(
                f"online_store.connection_string names {len(self.address.nodes)} servers; "
                "several host:port parts are for redis_type: redis_cluster"
            )
        if self.cluster and self.address.db != 0:
            raise ConfigError(
                f"online_store.connection_string: db={self.address.db}, but a Redis Cluster "
                "has only database 0; remove db="
            )
        ttl = cfg.key_ttl_seconds
        if ttl is not None and ttl < 0:
            raise ConfigError(f"online_store.key_ttl_seconds must not be negative, got {ttl}")
        self.key_ttl_seconds = ttl or 0
        self.kind = "Redis Cluster" if self.cluster else "Redis"
        self._clients: dict[tuple[str, int], redis.Redis] = {}
        self._topo: _Topology | None = None
        self._lock = threading.Lock()

    # --- connections -----------------------------------------------------------------------

    def _new_client(self, host: str, port: int) -> redis.Redis:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        a = self.address
        return redis.Redis(
            host=host,
            port=port,
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

    def _client_for(self, host: str, port: int) -> redis.Redis:
        client = self._clients.get((host, port))
        if client is None:
            client = self._clients[(host, port)] = self._new_client(host, port)
        return client

    def client(self) -> redis.Redis:
        """A client of the (first) server."""
        return self._client_for(self.address.host, self.address.port)

    def _topology(self) -> _Topology:
        topo = self._topo
        if topo is None:
            with self._lock:
                if self._topo is None:
                    self._topo = self._discover() if self.cluster else self._single()
                topo = self._topo
        return topo

    def _single(self) -> _Topology:
        a = self.address
        return _Topology([_Node(str(a), self.client(), a.host, a.port)], None)

    def _discover(self) -> _Topology:
        """Ask the first cluster node that answers which primary serves which slots."""
        import redis

        last: Exception | None = None
        for host, port in self.address.nodes:
            try:
                ranges = self._client_for(host, port).execute_command("CLUSTER SLOTS")
                break
            except redis.AuthenticationError:
                raise  # refused, not down: another node would refuse it too
            except (redis.ConnectionError, redis.TimeoutError) as e:
                last = redis.ConnectionError(f"node {_hp(host, port)}: {e}")
            except redis.ResponseError as e:
                if "cluster support disabled" in str(e):
                    raise StoreError(
                        f"Redis Cluster online store: {_hp(host, port)} is not a cluster node "
                        "(cluster support disabled); use redis_type: redis for a single server"
                    ) from None
                raise
        else:
            assert last is not None
            raise last
        slots: list[_Node | None] = [None] * SLOTS
        nodes: dict[tuple[str, int], _Node] = {}
        for start, end, primary, *_ in ranges:
            h = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
            where = (h or host, int(primary[1]))  # an empty host: the node we asked
            node = nodes.get(where)
            if node is None:
                node = nodes[where] = _Node(_hp(*where), self._client_for(*where), *where)
            slots[int(start) : int(end) + 1] = [node] * (int(end) - int(start) + 1)
        return _Topology(list(nodes.values()), slots)

    def _forget_topology(self) -> None:
        with self._lock:
            self._topo = None

    def _run(self, what: str, op: Callable[[_Topology], T]) -> T:
        """``op(topology)``, with errors typed. On a cluster, a moved slot, a node that
        failed or a cluster that is changing re-reads the slot map and runs ``op`` once
        more (every operation here is idempotent)."""
        try:
            if not self.cluster:
                return op(self._topo or self._topology())
            try:
                return op(self._topology())
            except Exception as e:
                if not _cluster_changing(e):
                    raise
                self._forget_topology()
            return op(self._topology())
        except Exception as e:  # (a try block, not a context manager: this is the hot path)
            typed = self._typed(e, what)
            if typed is None:
                raise
            raise typed from None

    def _typed(self, e: Exception, what: str) -> StoreError | None:
        """The banquet error for a redis-py error (None: not one), its text redacted."""
        typed = self._typed_raw(e, what)
        if typed is not None and self.address.password:
            typed.args = (redact_text(str(typed), self.address.password),)
        return typed

    def _typed_raw(self, e: Exception, what: str) -> StoreError | None:
        import redis
        from redis.exceptions import AskError, ClusterDownError, TryAgainError

        where = f"{self.kind} online store at {self.address}"
        if isinstance(e, (redis.AuthenticationError, redis.exceptions.AuthorizationError)):
            return StoreError(
                f"{where}: {what}: {e} (the server refused the login: check username= and "
                "password= in online_store.connection_string)"
            )
        if isinstance(e, (redis.ConnectionError, redis.TimeoutError)):
            return StoreUnavailable(f"{where} is unavailable ({what}): {e}")
        if isinstance(e, (AskError, TryAgainError, ClusterDownError, _Uncovered)):
            return StoreUnavailable(
                f"{where} is unavailable ({what}): the cluster is down or changing: "
                f"{type(e).__name__}: {e}"
            )
        if isinstance(e, redis.RedisError):
            return StoreError(f"{where}: {what}: {e}")
        return None

    def _exchange(self, batches: Sequence[tuple[_Node, bytes, int]]) -> list[list[Any]]:
        """Send each node its RESP-encoded commands, then read each node's replies (so
        several nodes cost one round trip's latency). Per batch: (node, commands, number of
        replies). The first error reply is raised after every reply has been read (the
        connections stay in step); a connection that failed or was interrupted is closed,
        never reused. A pooled connection the server closed meanwhile (a restart) fails
        before any reply: then the exchange is sent once more on fresh connections (every
        command sent here is idempotent)."""
        try:
            return self._exchange_once(batches, fresh=False)
        except _StaleConnection:
            for node, _, _ in batches:
                node.close()
            return self._exchange_once(batches, fresh=True)

    def _exchange_once(
        self, batches: Sequence[tuple[_Node, bytes, int]], fresh: bool
    ) -> list[list[Any]]:
        import redis

        taken: list[tuple[_Node, _Conn]] = []
        node = batches[0][0] if batches else None
        clean = reused = got_any = False
        out: list[list[Any]] = []
        try:
            for node, payload, _ in batches:
                conn = None if fresh else _pop(node.idle)
                if conn is None:
                    conn = _Conn(self.address, node.host, node.port)
                else:
                    reused = True
                taken.append((node, conn))
                conn.send(payload)
            for (node, _, n), (_, conn) in zip(batches, taken):  # noqa: B007 (node: for errors)
                out.append(conn.receive(n))
                got_any = True
            clean = True
        except (redis.ConnectionError, redis.TimeoutError) as e:
            if reused and not got_any and isinstance(e, redis.ConnectionError):
                raise _StaleConnection from e
            if self.cluster and node is not None:
                raise type(e)(f"node {node.name}: {e}") from None
            raise
        finally:
            for owner, conn in taken:
                if clean:
                    owner.idle.append(conn)
                else:
                    conn.close()  # unread replies (an error, a timeout, Ctrl-C)
        for replies in out:
            for r in replies:
                if isinstance(r, Exception):
                    raise r
        return out

    def _by_node(
        self, topo: _Topology, full_keys: Sequence[bytes]
    ) -> list[tuple[_Node, list[int]]]:
        """The positions of ``full_keys`` each cluster node serves."""
        slots = topo.slots
        assert slots is not None
        groups: dict[_Node, list[int]] = {}
        for i, k in enumerate(full_keys):
            node = slots[key_slot(k)]
            if node is None:
                raise _Uncovered(f"no node serves slot {key_slot(k)}")
            group = groups.get(node)
            if group is None:
                groups[node] = [i]
            else:
                group.append(i)
        return list(groups.items())

    def _each(
        self, topo: _Topology, full_keys: Sequence[bytes], cmds: Sequence[bytes]
    ) -> list[Any]:
        """Send ``cmds[i]`` (about ``full_keys[i]``) to the node serving that key; the
        replies in the same order. One round trip."""
        if topo.slots is None:
            return self._exchange([(topo.nodes[0], b"".join(cmds), len(cmds))])[0]
        groups = self._by_node(topo, full_keys)
        replies = self._exchange(
            [(node, b"".join([cmds[i] for i in idx]), len(idx)) for node, idx in groups]
        )
        out: list[Any] = [None] * len(cmds)
        for (_, idx), got in zip(groups, replies):
            for i, r in zip(idx, got):
                out[i] = r
        return out

    # --- the interface ---------------------------------------------------------------------

    def create_view(self, project: str, view: FeatureView) -> None:
        # Fields appear when written; nothing to create. Check the servers answer, so that
        # `apply` reports an unreachable store rather than the first materialization.
        def ping(topo: _Topology) -> None:
            self._exchange([(node, b"*1\r\n$4\r\nPING\r\n", 1) for node in topo.nodes])

        self._run("ping", ping)

    def drop_view(self, project: str, view_name: str) -> None:
        self.__dict__.get("_ensured", set()).discard((project, view_name))
        fields = (view_name.encode(),)
        self._run(
            f"drop feature view {view_name!r}",
            lambda topo: self._each_key_batch(
                topo, project, lambda pipe, keys: [pipe.hdel(k, *fields) for k in keys]
            ),
        )

    def teardown(self, project: str) -> None:
        def unlink(pipe: Any, keys: list[bytes]) -> None:
            if self.cluster:  # keys of several slots: one command each
                for k in keys:
                    pipe.unlink(k)
            else:
                pipe.unlink(*keys)

        self._run(
            f"teardown of project {project!r}",
            lambda topo: self._each_key_batch(topo, project, unlink),
        )

    def _each_key_batch(self, topo: _Topology, project: str, action: Any) -> None:
        """SCAN this project's keys on every primary; ``action(pipeline, keys)`` per batch."""
        pattern = _glob_escape(_prefix(project)) + b"*"
        for node in topo.nodes:
            client = node.client
            cursor = 0
            while True:
                cursor, keys = client.scan(cursor, match=pattern, count=SCAN_COUNT)
                if keys:
                    pipe = client.pipeline(transaction=False)
                    action(pipe, keys)
                    pipe.execute()
                if cursor == 0:
                    break

    def write(
        self,
        project: str,
        view_name: str,
        keys: Sequence[bytes],
        event_ts: Sequence[int],
        created_ts: Sequence[int],
        blobs: Sequence[bytes],
        *,
        overwrite: bool = False,
    ) -> None:
        if not len(keys):
            return
        if self._absent_first and not overwrite:
            import pyarrow as pa

            try:
                arrays = [
                    pa.array(keys, pa.binary()),
                    pa.array(event_ts, pa.int64()),
                    pa.array(created_ts, pa.int64()),
                    pa.array(blobs, pa.binary()),
                ]
            except (TypeError, pa.ArrowException):
                raise _not_bytes(view_name) from None
            self.write_arrays(project, view_name, *arrays)
            return
        self._write_scripts(project, view_name, keys, event_ts, created_ts, blobs, overwrite)

    @property
    def _absent_first(self) -> bool:
        """Whether writes try ``HSETNX`` first: without a key ttl (HSETNX cannot set one)."""
        return not self.key_ttl_seconds

    def write_arrays(
        self,
        project: str,
        view_name: str,
        keys: pa.Array,
        event_ts: pa.Array,
        created_ts: pa.Array | None,
        blobs: pa.Array,
        *,
        overwrite: bool = False,
    ) -> None:
        if not self._absent_first or not len(keys) or overwrite:  # overwrite: all by script
            super().write_arrays(
                project, view_name, keys, event_ts, created_ts, blobs, overwrite=overwrite
            )
            return
        import pyarrow as pa

        ev = event_ts.cast(pa.int64())
        cr = (
            created_ts.cast(pa.int64())
            if created_ts is not None
            else pa.nulls(len(keys), pa.int64())
        )
        prefix, field = _prefix(project), view_name.encode()
        try:
            left = self._run(
                f"write to feature view {view_name!r}",
                lambda topo: self._write_absent(topo, prefix, field, keys, ev, cr, blobs),
            )
        except TypeError:
            raise _not_bytes(view_name) from None
        if left:  # hashes that had a value for this view: the script keeps the newer one
            idx = pa.array(left, pa.int64())
            self._write_scripts(
                project,
                view_name,
                keys.take(idx).to_pylist(),
                ev.take(idx).to_pylist(),
                cr.take(idx).fill_null(0).to_pylist(),
                blobs.take(idx).to_pylist(),
            )

    def _write_scripts(
        self,
        project: str,
        view_name: str,
        keys: Sequence[bytes],
        event_ts: Sequence[int],
        created_ts: Sequence[int],
        blobs: Sequence[bytes],
        overwrite: bool = False,
    ) -> None:
        """Write through the script, which keeps the newer of stored and given value (or,
        with ``overwrite``, the given one)."""
        prefix = _prefix(project)
        head = [view_name.encode(), b"%d" % self.key_ttl_seconds, b"1" if overwrite else b"0"]
        try:
            if self.cluster:
                self._run(
                    f"write to feature view {view_name!r}",
                    lambda topo: self._write_cluster(
                        topo, prefix, head, keys, event_ts, created_ts, blobs
                    ),
                )
                return
        except TypeError:
            raise _not_bytes(view_name) from None

        def wave(lo: int) -> Callable[[], list[tuple[_Node, bytes, int]]]:
            def encode() -> list[tuple[_Node, bytes, int]]:
                hi = min(lo + KEYS_PER_ROUND_TRIP, len(keys))
                payload, calls = encode_script_calls(
                    prefix,
                    head,
                    keys[lo:hi],
                    event_ts[lo:hi],
                    created_ts[lo:hi],
                    blobs[lo:hi],
                )
                return [(node, payload, calls)]

            return encode

        node = self._topology().nodes[0]
        waves = [wave(lo) for lo in range(0, len(keys), KEYS_PER_ROUND_TRIP)]
        try:
            self._run(
                f"write to feature view {view_name!r}",
                lambda _: self._send_scripts([node], waves),
            )
        except TypeError:
            raise _not_bytes(view_name) from None

    def _write_absent(
        self,
        topo: _Topology,
        prefix: bytes,
        field: bytes,
        keys: pa.Array,
        event_ts: pa.Array,
        created_ts: pa.Array,
        blobs: pa.Array,
    ) -> list[int]:
        """``HSETNX`` per row: writes the rows whose hash holds no value for this view yet
        (nothing stored, so nothing newer to keep: decided by Redis in one native command,
        about a third of what the script costs it per key). Returns the positions left for
        the script. On a cluster each node gets its own keys (a one-key command needs no
        slot grouping). Once most keys of the waves read so far had a value (a
        re-materialization), the remaining waves skip straight to the script."""
        import pyarrow as pa

        # per node: its rows' positions (None: every row, in order) and how many
        groups: list[tuple[_Node, pa.Array | None, int]]
        if self.cluster:
            full = [prefix + k for k in keys.to_pylist()]
            groups = [
                (node, pa.array(idx, pa.int64()), len(idx))
                for node, idx in self._by_node(topo, full)
            ]
        else:
            groups = [(topo.nodes[0], None, len(keys))]
        columns = (keys, event_ts, created_ts, blobs)

        def ints(part: pa.Array | range) -> Sequence[int]:
            return part if isinstance(part, range) else part.to_pylist()

        def attempt(fresh: bool) -> list[int]:
            left: list[int] = []
            sent: deque[pa.Array | range] = deque()  # each payload's positions, in order
            seen = stored = 0  # keys whose replies were read, and how many had a value

            def wave(lo: int) -> Callable[[], list[tuple[_Node, bytes, int]]]:
                def make() -> list[tuple[_Node, bytes, int]]:
                    batch = []
                    for node, idx, size in groups:
                        hi = min(lo + KEYS_PER_ROUND_TRIP, size)
                        if lo >= hi:
                            continue
                        part = range(lo, hi) if idx is None else idx.slice(lo, hi - lo)
                        if 2 * stored > seen:
                            left.extend(ints(part))
                            continue
                        if idx is None:
                            cols = [c.slice(lo, hi - lo) for c in columns]
                        else:
                            cols = [c.take(part) for c in columns]
                        sent.append(part)
                        batch.append((node, _core.resp_hsetnx(prefix, field, *cols), hi - lo))
                    return batch

                return make

            def read(
                conns: dict[_Node, _Conn], batch: list[tuple[_Node, bytes, int]]
            ) -> list[list[tuple[_Node, bytes, int]]]:
                nonlocal seen, stored
                for owner, _, n in batch:
                    part = sent.popleft()
                    digits = conns[owner].receive_flags(n)
                    if digits is None:  # an error reply among them: read all, then raise
                        replies = conns[owner].receive(n)
                        raise next(r for r in replies if isinstance(r, Exception))
                    seen += n
                    if digits.count(b"0"):
                        at = ints(part)
                        rejected = [at[i] for i, d in enumerate(digits) if d == 48]
                        stored += len(rejected)
                        left.extend(rejected)
                return []

            longest = max(size for _, _, size in groups)
            waves = [wave(lo) for lo in range(0, longest, KEYS_PER_ROUND_TRIP)]
            self._run_waves(waves, fresh, read)
            left.sort()
            return left

        try:
            return attempt(fresh=False)
        except _StaleConnection:
            for node, _, _ in groups:
                node.close()
            return attempt(fresh=True)

    def _write_cluster(
        self,
        topo: _Topology,
        prefix: bytes,
        head: list[bytes],
        keys: Sequence[bytes],
        event_ts: Sequence[int],
        created_ts: Sequence[int],
        blobs: Sequence[bytes],
    ) -> None:
        """The keys of one script call must share a slot: one call per slot (per node,
        all its slots' calls pipelined)."""
        full = [prefix + k for k in keys]
        calls: dict[_Node, list[tuple[bytes, int]]] = {}
        for node, idx in self._by_node(topo, full):
            by_slot: dict[int, list[int]] = {}
            for i in idx:
                by_slot.setdefault(key_slot(full[i]), []).append(i)
            mine = calls[node] = []
            for same_slot in by_slot.values():
                for lo in range(0, len(same_slot), SCRIPT_KEYS):
                    part = same_slot[lo : lo + SCRIPT_KEYS]
                    payload, _ = encode_script_calls(  # one call (<= SCRIPT_KEYS rows)
                        prefix,
                        head,
                        [keys[i] for i in part],
                        [event_ts[i] for i in part],
                        [created_ts[i] for i in part],
                        [blobs[i] for i in part],
                    )
                    mine.append((payload, len(part)))
        waves: list[list[tuple[_Node, bytes, int]]] = []
        for node, mine in calls.items():
            wave, n = 0, 0
            group: list[bytes] = []
            for payload, count in mine:
                group.append(payload)
                n += count
                if n >= KEYS_PER_ROUND_TRIP:
                    _put(waves, wave, (node, b"".join(group), len(group)))
                    wave, group, n = wave + 1, [], 0
            if group:
                _put(waves, wave, (node, b"".join(group), len(group)))
        self._send_scripts(list(calls), [functools.partial(list, w) for w in waves])

    def _send_scripts(
        self, nodes: list[_Node], waves: Sequence[Callable[[], list[tuple[_Node, bytes, int]]]]
    ) -> None:
        """Run script calls in waves: ``waves[i]()`` encodes wave i as (node, RESP of its
        calls, number of calls) per node. Wave i+1 is encoded and sent before wave i's
        replies are read, so Python encodes while Redis runs the scripts. A reused
        connection found closed (a server restart) reruns everything once on fresh ones;
        waves refused with NOSCRIPT (a new or flushed server) are rerun after loading the
        script (rerunning a call is harmless: the newer row wins either way)."""
        for node in nodes:
            if not node.script_loaded:
                node.client.script_load(_WRITE_LUA)
                node.script_loaded = True
        try:
            refused = self._run_waves(waves, fresh=False)
        except _StaleConnection:
            for node in nodes:
                node.close()
            refused = self._run_waves(waves, fresh=True)
        if refused:
            for node in {node for batch in refused for node, _, _ in batch}:
                node.client.script_load(_WRITE_LUA)
            for batch in refused:
                self._exchange(batch)

    def _run_waves(
        self,
        waves: Sequence[Callable[[], list[tuple[_Node, bytes, int]]]],
        fresh: bool,
        read: Callable[
            [dict[_Node, _Conn], list[tuple[_Node, bytes, int]]],
            list[list[tuple[_Node, bytes, int]]],
        ]
        | None = None,
    ) -> list[list[tuple[_Node, bytes, int]]]:
        """Send the waves, each before reading the previous one's replies with ``read``
        (default: script calls). Returns the waves that came back NOSCRIPT; raises the first
        other error reply."""
        import redis

        read = read or self._read_wave

        conns: dict[_Node, _Conn] = {}
        unread: list[list[tuple[_Node, bytes, int]]] = []
        refused: list[list[tuple[_Node, bytes, int]]] = []
        reused = got_any = clean = False
        node: _Node | None = None
        try:
            for make in waves:
                batch = make()
                for node, payload, _ in batch:
                    conn = conns.get(node)
                    if conn is None:
                        conn = None if fresh else _pop(node.idle)
                        reused = reused or conn is not None
                        conn = conns[node] = conn or _Conn(self.address, node.host, node.port)
                    conn.send(payload)
                unread.append(batch)
                if len(unread) == 2:
                    refused += read(conns, unread.pop(0))
                    got_any = True
            while unread:
                refused += read(conns, unread.pop(0))
                got_any = True
            clean = True
        except (redis.ConnectionError, redis.TimeoutError) as e:
            if reused and not got_any and isinstance(e, redis.ConnectionError):
                raise _StaleConnection from e
            if self.cluster and node is not None:
                raise type(e)(f"node {node.name}: {e}") from None
            raise
        finally:
            for owner, conn in conns.items():
                if clean:
                    owner.idle.append(conn)
                else:
                    conn.close()
        return refused

    @staticmethod
    def _read_wave(
        conns: dict[_Node, _Conn], batch: list[tuple[_Node, bytes, int]]
    ) -> list[list[tuple[_Node, bytes, int]]]:
        from redis.exceptions import NoScriptError

        error: Exception | None = None
        for node, _, n in batch:
            for r in conns[node].receive(n):
                if isinstance(r, Exception) and error is None:
                    error = r
        if isinstance(error, NoScriptError):
            return [batch]
        if error is not None:
            raise error
        return []

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
            full = [prefix + k for k in keys]
            cmds = [b"%b$%d\r\n%b\r\n%b" % (cmd, len(f), f, tail) for f in full]
            rows = self._run("read", lambda topo: self._each(topo, full, cmds))
            return [
                [None if (v := row[i]) is None else v[16:] for row in rows]  # minus the stamp
                for i in range(len(fields))
            ]
        # Views keyed by different entities: the fields wanted per distinct key.
        wanted: dict[bytes, list[int]] = {}
        for i, (_, keys) in enumerate(requests):
            for k in keys:
                views = wanted.setdefault(k, [])
                if not views or views[-1] != i:
                    views.append(i)
        if not wanted:
            return [[] for _ in requests]
        full = [prefix + k for k in wanted]
        cmds = [
            b"*%d\r\n$5\r\nHMGET\r\n" % (len(views) + 2)
            + _bulk(f)
            + b"".join(_bulk(fields[i]) for i in views)
            for f, views in zip(full, wanted.values())
        ]
        replies = self._run("read", lambda topo: self._each(topo, full, cmds))
        found: list[dict[bytes, bytes | None]] = [{} for _ in requests]
        for (k, views), values in zip(wanted.items(), replies):
            for i, v in zip(views, values):
                found[i][k] = None if v is None else v[16:]  # minus the stamp
        return [[f[k] for k in keys] for f, (_, keys) in zip(found, requests)]

    def close(self) -> None:
        with self._lock:
            clients, self._clients, topo, self._topo = self._clients, {}, self._topo, None
        for node in topo.nodes if topo else []:
            node.close()
        for client in clients.values():
            client.close()


def _put(waves: list[list[T]], i: int, item: T) -> None:
    while len(waves) <= i:
        waves.append([])
    waves[i].append(item)


def _not_bytes(view_name: str) -> StoreError:
    return StoreError(
        f"feature view {view_name!r}: keys and values to write must be bytes (a value is None?)"
    )
