"""``RedisOnlineStore``: one hash per (project, entity key), one field per feature view, on a
single server or a Redis Cluster. Layout, write script and routing: ARCHITECTURE.md, "Redis
layout" and "Redis Cluster"; the package's ``__init__`` sums them up."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from banquet import _core
from banquet.errors import ConfigError, StoreError, StoreUnavailable
from banquet.online.base import OnlineStore, batch_columns
from banquet.online.redis.address import hp, parse_connection_string
from banquet.online.redis.cluster import (
    Node,
    Topology,
    Uncovered,
    by_node,
    cluster_changing,
    key_slot,
    rows_by_node,
    slot_map,
)
from banquet.online.redis.connections import Lease, borrowed
from banquet.online.redis.protocol import (
    WRITE_LUA,
    bulk,
    encode_script_calls,
)
from banquet.redact import redact_text

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import redis

    from banquet.config import RedisOnlineConfig, RepoConfig
    from banquet.feature_view import FeatureView

T = TypeVar("T")

KEYS_PER_ROUND_TRIP = 10_000  # script calls sent together (per node), then their replies read
SCAN_COUNT = 1000
# A read of more keys than this computes their cluster slots in one call (_core.key_slots
# over an Arrow array, grouped in numpy); fewer, one key_slot call each: the array's fixed
# ~20 us (pa.array, the Arrow hand-over, numpy) costs more below ~150 keys (measured: 1 key
# 0.5 vs 21 us, 100 keys 18 vs 30 us, 1000 keys 200 vs 67 us).
SLOTS_IN_ONE_CALL_FROM = 128


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
        self._topo: Topology | None = None
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

    def _topology(self) -> Topology:
        topo = self._topo
        if topo is None:
            with self._lock:
                if self._topo is None:
                    self._topo = self._discover() if self.cluster else self._single()
                topo = self._topo
        return topo

    def _single(self) -> Topology:
        a = self.address
        return Topology([Node(str(a), self.client(), a.host, a.port)], None)

    def _discover(self) -> Topology:
        """Ask the first cluster node that answers which primary serves which slots."""
        import redis

        last: Exception | None = None
        for host, port in self.address.nodes:
            try:
                ranges = self._client_for(host, port).execute_command(  # type: ignore[no-untyped-call]
                    "CLUSTER SLOTS"
                )
                break
            except redis.AuthenticationError:
                raise  # refused, not down: another node would refuse it too
            except (redis.ConnectionError, redis.TimeoutError) as e:
                last = redis.ConnectionError(f"node {hp(host, port)}: {e}")
            except redis.ResponseError as e:
                if "cluster support disabled" in str(e):
                    raise StoreError(
                        f"Redis Cluster online store: {hp(host, port)} is not a cluster node "
                        "(cluster support disabled); use redis_type: redis for a single server"
                    ) from None
                raise
        else:
            assert last is not None
            raise last
        return slot_map(ranges, host, lambda h, p: Node(hp(h, p), self._client_for(h, p), h, p))

    def _forget_topology(self) -> None:
        with self._lock:
            self._topo = None

    def _run(self, what: str, op: Callable[[Topology], T]) -> T:
        """``op(topology)``, with errors typed. On a cluster, a moved slot, a node that
        failed or a cluster that is changing re-reads the slot map and runs ``op`` once
        more (every operation here is idempotent)."""
        try:
            if not self.cluster:
                return op(self._topo or self._topology())
            try:
                return op(self._topology())
            except Exception as e:
                if not cluster_changing(e):
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
        if isinstance(e, (AskError, TryAgainError, ClusterDownError, Uncovered)):
            return StoreUnavailable(
                f"{where} is unavailable ({what}): the cluster is down or changing: "
                f"{type(e).__name__}: {e}"
            )
        if isinstance(e, redis.RedisError):
            return StoreError(f"{where}: {what}: {e}")
        return None

    def _exchange(self, batches: Sequence[tuple[Node, bytes, int]]) -> list[list[Any]]:
        """Send each node its RESP-encoded commands, then read each node's replies (so
        several nodes cost one round trip's latency). Per batch: (node, commands, number of
        replies). The first error reply is raised after every reply has been read (the
        connections stay in step and go back to their pools)."""
        out = borrowed(self.address, self.cluster, Lease.exchange, batches)
        for replies in out:
            for r in replies:
                if isinstance(r, Exception):
                    raise r
        return out

    def _each(self, topo: Topology, full_keys: Sequence[bytes], cmds: Sequence[bytes]) -> list[Any]:
        """Send ``cmds[i]`` (about ``full_keys[i]``) to the node serving that key; the
        replies in the same order. One round trip."""
        if topo.slots is None:
            return self._exchange([(topo.nodes[0], b"".join(cmds), len(cmds))])[0]
        groups: Sequence[tuple[Node, list[int]]]
        if len(full_keys) < SLOTS_IN_ONE_CALL_FROM:
            groups = by_node(topo, [key_slot(k) for k in full_keys])
        else:
            import pyarrow as pa

            slots = _core.key_slots(pa.array(full_keys, pa.binary())).to_numpy()
            groups = [(node, idx.tolist()) for node, idx in rows_by_node(topo, slots)]
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
        def ping(topo: Topology) -> None:
            self._exchange([(node, b"*1\r\n$4\r\nPING\r\n", 1) for node in topo.nodes])

        self._run("ping", ping)

    def drop_view(self, project: str, view_name: str) -> None:
        self._forget_ensured(project, view_name)
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

    def _each_key_batch(self, topo: Topology, project: str, action: Any) -> None:
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
        self, project: str, view_name: str, batch: pa.RecordBatch, *, overwrite: bool = False
    ) -> None:
        """``HSETNX`` first for hashes without a value for this view (no key ttl, no
        ``overwrite``), the write script for the rest. Every payload is encoded in Rust from
        the Arrow columns (taken per node / slot with ``take``): no Python object per row."""
        import pyarrow as pa

        if not batch.num_rows:
            return
        keys, event_ts, created_ts, blobs = batch_columns(batch)
        try:
            ev = event_ts.cast(pa.int64())
            cr = created_ts.cast(pa.int64())
        except pa.ArrowException:
            raise _not_bytes(view_name) from None
        prefix = _prefix(project)
        if self._absent_first and not overwrite:  # overwrite: all by script
            field = view_name.encode()
            try:
                left = self._run(
                    f"write to feature view {view_name!r}",
                    lambda topo: self._write_absent(topo, prefix, field, keys, ev, cr, blobs),
                )
            except TypeError:
                raise _not_bytes(view_name) from None
            if not len(left):
                return
            # hashes that had a value for this view: the script keeps the newer one
            idx = pa.array(left)
            keys, ev, cr, blobs = keys.take(idx), ev.take(idx), cr.take(idx), blobs.take(idx)
        head = [view_name.encode(), b"%d" % self.key_ttl_seconds, b"1" if overwrite else b"0"]
        try:
            self._run(
                f"write to feature view {view_name!r}",
                lambda topo: self._write_scripts(topo, prefix, head, keys, ev, cr, blobs),
            )
        except TypeError:
            raise _not_bytes(view_name) from None

    @property
    def _absent_first(self) -> bool:
        """Whether writes try ``HSETNX`` first: without a key ttl (HSETNX cannot set one)."""
        return not self.key_ttl_seconds

    def _write_absent(
        self,
        topo: Topology,
        prefix: bytes,
        field: bytes,
        keys: pa.Array,
        event_ts: pa.Array,
        created_ts: pa.Array,
        blobs: pa.Array,
    ) -> np.ndarray:
        """``HSETNX`` per row: writes the rows whose hash holds no value for this view yet
        (nothing stored, so nothing newer to keep: decided by Redis in one native command,
        about a third of what the script costs it per key). Returns the positions left for
        the script (int64, ascending). On a cluster each node gets its own keys (a one-key
        command needs no slot grouping). Once most keys of the waves read so far had a
        value (a re-materialization), the remaining waves skip straight to the script."""
        import numpy as np
        import pyarrow as pa

        # per node: its rows' positions (None: every row, in order) and how many
        groups: list[tuple[Node, np.ndarray | None, int]]
        if self.cluster:
            slots = _core.key_slots(keys, prefix).to_numpy()
            groups = [(node, idx, len(idx)) for node, idx in rows_by_node(topo, slots)]
        else:
            groups = [(topo.nodes[0], None, len(keys))]
        columns = (keys, event_ts, created_ts, blobs)

        def attempt(lease: Lease, _: None) -> np.ndarray:
            left: list[np.ndarray] = []
            sent: deque[np.ndarray | tuple[int, int]] = deque()  # each payload's positions
            seen = stored = 0  # keys whose replies were read, and how many had a value

            def positions(part: np.ndarray | tuple[int, int]) -> np.ndarray:
                return np.arange(*part, dtype=np.int64) if isinstance(part, tuple) else part

            def wave(lo: int) -> Callable[[], list[tuple[Node, bytes, int]]]:
                def make() -> list[tuple[Node, bytes, int]]:
                    batch = []
                    for node, idx, size in groups:
                        hi = min(lo + KEYS_PER_ROUND_TRIP, size)
                        if lo >= hi:
                            continue
                        part = (lo, hi) if idx is None else idx[lo:hi]
                        if 2 * stored > seen:
                            left.append(positions(part))
                            continue
                        if idx is None:
                            cols = [c.slice(lo, hi - lo) for c in columns]
                        else:
                            take = pa.array(part)
                            cols = [c.take(take) for c in columns]
                        sent.append(part)
                        batch.append((node, _core.resp_hsetnx(prefix, field, *cols), hi - lo))
                    return batch

                return make

            def read(
                lease: Lease, batch: list[tuple[Node, bytes, int]]
            ) -> list[list[tuple[Node, bytes, int]]]:
                nonlocal seen, stored
                for owner, _, n in batch:
                    part = sent.popleft()
                    digits = lease.receive_flags(owner, n)
                    if digits is None:  # an error reply among them: read all, then raise
                        replies = lease.receive(owner, n)
                        raise next(r for r in replies if isinstance(r, Exception))
                    seen += n
                    if digits.count(b"0"):
                        rejected = positions(part)[np.frombuffer(digits, np.uint8) == 48]
                        stored += len(rejected)
                        left.append(rejected)
                return []

            longest = max(size for _, _, size in groups)
            waves = [wave(lo) for lo in range(0, longest, KEYS_PER_ROUND_TRIP)]
            _run_waves(lease, (waves, read))
            if not left:
                return np.empty(0, np.int64)
            return np.sort(np.concatenate(left))

        return borrowed(self.address, self.cluster, attempt, None)

    def _write_scripts(
        self,
        topo: Topology,
        prefix: bytes,
        head: list[bytes],
        keys: pa.Array,
        event_ts: pa.Array,
        created_ts: pa.Array,
        blobs: pa.Array,
    ) -> None:
        """Write through the script, which keeps the newer of stored and given value (or,
        with ``head``'s overwrite flag, the given one). On a cluster the keys of one script
        call must share a slot: each node gets its rows ordered by slot (numpy), taken
        from the arrays, and the encoder starts a new call at each slot change."""
        import pyarrow as pa

        columns = (keys, event_ts, created_ts, blobs)
        # per node: its rows (None: every row, in order), their slots, how many
        groups: list[tuple[Node, pa.Array | None, pa.Array | None, int]]
        if self.cluster:
            slots = _core.key_slots(keys, prefix).to_numpy()
            groups = [
                (node, pa.array(idx), pa.array(slots[idx]), len(idx))
                for node, idx in rows_by_node(topo, slots, by_slot=True)
            ]
        else:
            groups = [(topo.nodes[0], None, None, len(keys))]

        def wave(lo: int) -> Callable[[], list[tuple[Node, bytes, int]]]:
            def encode() -> list[tuple[Node, bytes, int]]:
                batch = []
                for node, idx, slots, size in groups:
                    hi = min(lo + KEYS_PER_ROUND_TRIP, size)
                    if lo >= hi:
                        continue
                    if idx is None:
                        cols = [c.slice(lo, hi - lo) for c in columns]
                        part = None
                    else:
                        take = idx.slice(lo, hi - lo)
                        cols = [c.take(take) for c in columns]
                        part = slots.slice(lo, hi - lo) if slots is not None else None
                    k, e, c, b = cols
                    payload, calls = encode_script_calls(prefix, head, k, e, c, b, part)
                    batch.append((node, payload, calls))
                return batch

            return encode

        longest = max(size for _, _, _, size in groups)
        waves = [wave(lo) for lo in range(0, longest, KEYS_PER_ROUND_TRIP)]
        self._send_scripts([g[0] for g in groups], waves)

    def _send_scripts(
        self, nodes: list[Node], waves: Sequence[Callable[[], list[tuple[Node, bytes, int]]]]
    ) -> None:
        """Run script calls in waves: ``waves[i]()`` encodes wave i as (node, RESP of its
        calls, number of calls) per node. Wave i+1 is encoded and sent before wave i's
        replies are read, so Python encodes while Redis runs the scripts. A reused
        connection found closed (a server restart) reruns everything once on fresh ones;
        waves refused with NOSCRIPT (a new or flushed server) are rerun after loading the
        script (rerunning a call is harmless: the newer row wins either way)."""
        for node in nodes:
            if not node.script_loaded:
                node.client.script_load(WRITE_LUA)
                node.script_loaded = True
        refused = borrowed(self.address, self.cluster, _run_waves, (waves, _read_wave))
        if refused:
            for node in {node for batch in refused for node, _, _ in batch}:
                node.client.script_load(WRITE_LUA)
            for batch in refused:
                self._exchange(batch)

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
            tail = b"".join(bulk(f) for f in fields)
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
            + bulk(f)
            + b"".join(bulk(fields[i]) for i in views)
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


def _not_bytes(view_name: str) -> StoreError:
    return StoreError(
        f"feature view {view_name!r}: keys and values to write must be bytes (a value is None?)"
    )


def _prefix(project: str) -> bytes:
    return project.encode() + b":"


def _glob_escape(raw: bytes) -> bytes:
    out = bytearray()
    for b in raw:
        if b in b"*?[]\\":
            out += b"\\"
        out.append(b)
    return bytes(out)


Batch = list[tuple[Node, bytes, int]]  # per node: RESP of its commands, number of replies


def _run_waves(
    lease: Lease,
    work: tuple[Sequence[Callable[[], Batch]], Callable[[Lease, Batch], list[Batch]]],
) -> list[Batch]:
    """Send the ``waves``, each before reading the previous one's replies with ``read``
    (so the next wave is encoded while Redis works); ``work`` is (waves, read). Returns what
    ``read`` returned (the script waves that came back NOSCRIPT)."""
    waves, read = work
    unread: list[Batch] = []
    refused: list[Batch] = []
    for make in waves:
        batch = make()
        for node, payload, _ in batch:
            lease.send(node, payload)
        unread.append(batch)
        if len(unread) == 2:
            refused += read(lease, unread.pop(0))
    while unread:
        refused += read(lease, unread.pop(0))
    return refused


def _read_wave(lease: Lease, batch: Batch) -> list[Batch]:
    """The replies of a wave of script calls: ``[batch]`` if refused with NOSCRIPT, else
    nothing; the first other error reply is raised after every reply was read."""
    from redis.exceptions import NoScriptError

    error: Exception | None = None
    for node, _, n in batch:
        if lease.receive_ints(node, n):  # the usual case: every call answered its count
            continue
        for r in lease.receive(node, n):
            if isinstance(r, Exception) and error is None:
                error = r
    if isinstance(error, NoScriptError):
        return [batch]
    if error is not None:
        raise error
    return []
