"""The servers a store talks to: ``Node`` (one Redis server and its idle connections),
``Topology`` (the primaries and, on a cluster, the node serving each slot) and the routing of
keys to nodes by slot (CRC16 of the key or its ``{hash tag}``, mod 16384)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from banquet._core import key_slot
from banquet.online.redis.address import hp

if TYPE_CHECKING:
    import redis

    from banquet.online.redis.protocol import Conn

SLOTS = 16384  # Redis Cluster hash slots; key_slot (Rust, wire/slot.rs) computes them


class Uncovered(Exception):
    """A key hashes to a cluster slot that no node serves (the cluster is down or changing)."""


class Node:
    """One Redis server: its address (for messages), a redis-py client for the occasional
    command (SCAN, SCRIPT LOAD, ...) and idle raw connections for the hot paths."""

    __slots__ = ("client", "host", "idle", "name", "port", "script_loaded")

    def __init__(self, name: str, client: redis.Redis, host: str, port: int) -> None:
        self.script_loaded = False  # the write script, loaded by this process
        self.name = name
        self.client = client
        self.host = host
        self.port = port
        self.idle: list[Conn] = []  # list.pop / append are atomic: no lock needed

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


@dataclass(frozen=True)
class Topology:
    nodes: list[Node]  # the primaries (one for a single server)
    slots: list[Node | None] | None  # cluster: the node serving each slot; None: one server

    @functools.cached_property
    def slot_owner(self) -> np.ndarray:
        """Per slot, the position in ``nodes`` of the node serving it (-1: none)."""
        served = np.empty(len(self.slots or ()), dtype=object)
        served[:] = self.slots or ()
        owner = np.full(len(served), -1, dtype=np.int64)
        for i, node in enumerate(self.nodes):  # (Node compares by identity, in C)
            owner[served == node] = i
        return owner


def slot_map(ranges: Sequence[Any], asked: str, node_for: Any) -> Topology:
    """The topology from a ``CLUSTER SLOTS`` reply (``asked``: the host that gave it, for
    entries with an empty host); ``node_for(host, port)`` makes each primary's ``Node``."""
    slots: list[Node | None] = [None] * SLOTS
    nodes: dict[tuple[str, int], Node] = {}
    for start, end, primary, *_ in ranges:
        h = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        where = (h or asked, int(primary[1]))
        node = nodes.get(where)
        if node is None:
            node = nodes[where] = node_for(*where)
        slots[int(start) : int(end) + 1] = [node] * (int(end) - int(start) + 1)
    return Topology(list(nodes.values()), slots)


def by_node(topo: Topology, key_slots: Sequence[int]) -> list[tuple[Node, list[int]]]:
    """The positions each cluster node serves, given each key's slot."""
    slots = topo.slots
    assert slots is not None
    groups: dict[Node, list[int]] = {}
    for i, slot in enumerate(key_slots):
        node = slots[slot]
        if node is None:
            raise Uncovered(f"no node serves slot {slot}")
        group = groups.get(node)
        if group is None:
            groups[node] = [i]
        else:
            group.append(i)
    return list(groups.items())


def rows_by_node(
    topo: Topology, key_slots: np.ndarray, *, by_slot: bool = False
) -> list[tuple[Node, np.ndarray]]:
    """The row positions (int64) each cluster node serves, given each row's slot, in row
    order (``by_slot``: ordered by slot, then row, so one slot's rows are consecutive).
    Computed in numpy, no Python object per row."""
    owner = topo.slot_owner[key_slots]
    if len(owner) and owner.min() < 0:
        missing = int(key_slots[int(np.argmin(owner))])
        raise Uncovered(f"no node serves slot {missing}")
    order = np.lexsort((key_slots, owner)) if by_slot else np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=len(topo.nodes))
    out = []
    lo = 0
    for i in range(len(counts)):  # per node, not per row
        count = int(counts[i])
        if count:
            out.append((topo.nodes[i], order[lo : lo + count]))
        lo += count
    return out


def cluster_changing(e: Exception) -> bool:
    """A failed node, a moved slot or a cluster in flux: worth re-reading the slot map."""
    import redis
    from redis.exceptions import AskError, ClusterDownError, TryAgainError

    return isinstance(
        e,
        (redis.ConnectionError, redis.TimeoutError, AskError, TryAgainError)
        + (ClusterDownError, Uncovered),
    ) and not isinstance(e, redis.AuthenticationError)


__all__ = [
    "SLOTS",
    "Node",
    "Topology",
    "Uncovered",
    "by_node",
    "rows_by_node",
    "cluster_changing",
    "hp",
    "key_slot",
]
