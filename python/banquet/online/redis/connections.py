"""Borrowing pooled raw connections: the one place that takes a connection from a node's idle
list, gives it back after a clean exchange, closes it after any error, and retries once on
fresh connections when a pooled one turns out closed. Every read and write path sends its
commands through ``borrowed``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from banquet.online.redis.address import RedisAddress
from banquet.online.redis.cluster import Node
from banquet.online.redis.protocol import Conn

T = TypeVar("T")
A = TypeVar("A")


class Lease:
    """The connections one operation borrowed, at most one per node, and what happened on
    them so far (whether any was reused from the pool, whether any reply was read: a reused
    connection failing before any reply is one the server closed while it sat idle)."""

    __slots__ = ("address", "conns", "fresh", "node", "replied", "reused")

    def __init__(self, address: RedisAddress, fresh: bool) -> None:
        self.address = address
        self.fresh = fresh  # never take from the pool (the retry after a stale one)
        self.conns: dict[Node, Conn] = {}
        self.node: Node | None = None  # the node last talked to (named in errors)
        self.replied = False
        self.reused = False

    def send(self, node: Node, payload: bytes) -> None:
        self.node = node
        conn = self.conns.get(node)
        if conn is None:
            conn = None if self.fresh else _pop(node.idle)
            if conn is None:
                conn = Conn(self.address, node.host, node.port)
            else:
                self.reused = True
            self.conns[node] = conn
        conn.send(payload)

    def receive(self, node: Node, replies: int) -> list[Any]:
        """``replies`` replies from ``node`` (error replies as exceptions, not raised)."""
        self.node = node
        out = self.conns[node].receive(replies)
        self.replied = True
        return out

    def receive_ints(self, node: Node, replies: int) -> bool:
        """``Conn.receive_ints`` on ``node``'s connection."""
        self.node = node
        out = self.conns[node].receive_ints(replies)
        self.replied = True
        return out

    def receive_flags(self, node: Node, replies: int) -> bytes | None:
        """``Conn.receive_flags`` on ``node``'s connection."""
        self.node = node
        out = self.conns[node].receive_flags(replies)
        self.replied = True
        return out

    def exchange(self, batches: Sequence[tuple[Node, bytes, int]]) -> list[list[Any]]:
        """Send every (node, commands, number of replies) batch, then read each one's
        replies: several nodes cost one round trip's latency."""
        for node, payload, _ in batches:
            self.send(node, payload)
        return [self.receive(node, n) for node, _, n in batches]

    def release(self, clean: bool) -> None:
        """Connections back to their pools after a clean operation; else closed (replies
        may be left unread: an error, a timeout, Ctrl-C)."""
        for node, conn in self.conns.items():
            if clean:
                node.idle.append(conn)
            else:
                conn.close()


def borrowed(address: RedisAddress, cluster: bool, op: Callable[[Lease, A], T], arg: A) -> T:
    """``op(lease, arg)`` on borrowed connections. A reused connection that fails before any
    reply (the server restarted) empties the pools it came from and runs ``op`` once more on
    fresh connections: every command sent this way is idempotent. On a cluster a connection
    error names the node. (A try/finally, not a context manager, and redis-py imported only
    on an error: this is on the read hot path.)"""
    lease = Lease(address, False)
    while True:
        clean = False
        try:
            result = op(lease, arg)
            clean = True
            return result
        except Exception as e:
            import redis

            if not isinstance(e, (redis.ConnectionError, redis.TimeoutError)):
                raise
            stale = (
                lease.reused
                and not lease.replied
                and not lease.fresh
                and isinstance(e, redis.ConnectionError)
            )
            if not stale:
                if cluster and lease.node is not None:
                    raise type(e)(f"node {lease.node.name}: {e}") from None
                raise
        finally:
            lease.release(clean)
        for node in lease.conns:
            node.close()
        lease = Lease(address, True)


def _pop(idle: list[Conn]) -> Conn | None:
    try:
        return idle.pop()
    except IndexError:  # another thread took the last one
        return None
