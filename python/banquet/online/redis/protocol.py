"""RESP on raw sockets: the write script and its calls encoded in bulk, one connection
(``Conn``) sending commands and parsing replies. redis-py's per-command encoding, pool
checkout and reply parsing cost more CPU per request than Redis takes to run it; redis-py
still serves the rare commands (SCAN, SCRIPT LOAD, CLUSTER SLOTS)."""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from banquet import _core
from banquet.online.redis.address import RedisAddress, hp

if TYPE_CHECKING:
    import pyarrow as pa

SCRIPT_KEYS = 500  # keys per EVALSHA call: keeps each script run short (Redis is single-threaded)

# KEYS: the hashes. ARGV: the view's field, ttl seconds (0: none), overwrite ('1': replace
# whatever is stored, the way to correct a future-dated value; '0': keep the newer), then
# per key its value (16-byte stamp + blob). Returns how many keys were written.
WRITE_LUA = """
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

WRITE_SHA = hashlib.sha1(WRITE_LUA.encode()).hexdigest().encode()


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def encode_script_calls(
    prefix: bytes,
    head: list[bytes],
    keys: pa.Array,
    event_ts: pa.Array,
    created_ts: pa.Array | None,
    blobs: pa.Array,
    slots: pa.Array | None = None,
) -> tuple[bytes, int]:
    """The write script calls for these Arrow rows (binary keys and blobs, int64 or
    timestamp[us] times), ``SCRIPT_KEYS`` rows a call, as one RESP buffer; and the number of
    calls. With ``slots`` (uint16, one per row, the rows ordered by slot) a call never mixes
    two slots (a cluster's rule). Encoded in Rust straight from the arrays (wire/resp.rs)."""
    return _core.resp_evalsha(
        WRITE_SHA, prefix, head, keys, event_ts, created_ts, blobs, SCRIPT_KEYS, slots
    )


class Conn:
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
            raise redis.TimeoutError(f"connecting to {hp(host, port)}: timed out") from e
        except OSError as e:
            raise redis.ConnectionError(f"connecting to {hp(host, port)}: {e}") from e
        self.sock = sock
        self.buf = b""
        self.pos = 0
        hello = []
        if address.password is not None:
            user = [address.username.encode()] if address.username else []
            hello.append(command([b"AUTH", *user, address.password.encode()]))
        if address.db:
            hello.append(command([b"SELECT", b"%d" % address.db]))
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

    def receive_ints(self, replies: int) -> bool:
        """Consume ``replies`` integer replies (the write script's), checked in one pass in
        Rust (``_core.resp_int_replies``); False, with nothing consumed, when another reply
        (an error) is among them: read them with ``receive``."""
        while True:
            end = _core.resp_int_replies(self.buf, self.pos, replies)
            if end == -2:
                return False
            if end >= 0:
                self.pos = end
                if self.pos == len(self.buf):
                    self.buf, self.pos = b"", 0
                return True
            self._fill()

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

        return BaseParser.parse_error(text)  # type: ignore[no-any-return, no-untyped-call]
    except ImportError:  # redis-py moved it: a plain error still names the problem
        from redis.exceptions import ResponseError

        return ResponseError(text)


def command(args: Sequence[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)
