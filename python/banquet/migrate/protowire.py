"""A minimal protocol-buffers wire-format reader (no generated code, no ``protobuf``
runtime): a message's bytes -> ``{field number: [values]}``, each value an int (varint,
fixed32/64 as raw ints) or bytes (length-delimited: strings, bytes, nested messages,
packed repeated fields). Interpreting a field is the caller's job (feast_proto.py), from the
field numbers of Feast's .proto files."""

from __future__ import annotations

import builtins
import struct

from banquet.errors import RegistryCorrupt

Fields = dict[int, list[int | bytes]]


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise RegistryCorrupt("truncated or malformed protobuf varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def parse(buf: bytes) -> Fields:
    """Every field of one message, in order of appearance (repeated fields: all values)."""
    out: Fields = {}
    pos, n = 0, len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > n:
                raise RegistryCorrupt("truncated protobuf fixed64 field")
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > n:
                raise RegistryCorrupt(f"protobuf field {number} runs past the end of its message")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            if pos + 4 > n:
                raise RegistryCorrupt("truncated protobuf fixed32 field")
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise RegistryCorrupt(f"protobuf field {number} has unsupported wire type {wire}")
        if number == 0:
            raise RegistryCorrupt("protobuf field number 0 is invalid")
        out.setdefault(number, []).append(value)
    return out


class Msg:
    """Typed access to a parsed message's fields by number."""

    __slots__ = ("fields",)

    def __init__(self, data: builtins.bytes | Fields) -> None:
        self.fields = parse(data) if isinstance(data, bytes) else data

    def _last(self, number: builtins.int) -> builtins.int | bytes | None:
        vals = self.fields.get(number)
        return vals[-1] if vals else None  # proto3: the last occurrence wins

    def str(self, number: builtins.int) -> builtins.str:
        v = self._last(number)
        return v.decode() if isinstance(v, bytes) else ""

    def bytes(self, number: builtins.int) -> builtins.bytes:
        v = self._last(number)
        return v if isinstance(v, bytes) else b""

    def int(self, number: builtins.int) -> builtins.int:
        v = self._last(number)
        return v if isinstance(v, int) else 0

    def signed(self, number: builtins.int) -> builtins.int:
        """An int32/int64 field (two's complement in a varint)."""
        v = self.int(number)
        return v - (1 << 64) if v >= 1 << 63 else v

    def bool(self, number: builtins.int) -> builtins.bool:
        return bool(self.int(number))

    def float(self, number: builtins.int) -> builtins.float:
        v = self._last(number)
        return struct.unpack("<f", struct.pack("<I", v))[0] if isinstance(v, int) else 0.0

    def has(self, number: builtins.int) -> builtins.bool:
        return number in self.fields

    def msg(self, number: builtins.int) -> Msg | None:
        v = self._last(number)
        return Msg(v) if isinstance(v, bytes) else None

    def msgs(self, number: builtins.int) -> list[Msg]:
        return [Msg(v) for v in self.fields.get(number, []) if isinstance(v, bytes)]

    def strs(self, number: builtins.int) -> list[builtins.str]:
        return [v.decode() for v in self.fields.get(number, []) if isinstance(v, bytes)]

    def map(self, number: builtins.int) -> dict[builtins.str, builtins.str]:
        """A ``map<string, string>`` field (entries with key 1, value 2)."""
        return {e.str(1): e.str(2) for e in self.msgs(number)}
