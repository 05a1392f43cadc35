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

Modules: ``address`` (the connection string), ``protocol`` (RESP, the write script, one raw
connection), ``cluster`` (nodes, slot map, routing by slot), ``connections`` (borrowing pooled
connections, the one retry on a stale one), ``store`` (``RedisOnlineStore``).
"""

from banquet.online.redis.address import RedisAddress, parse_connection_string
from banquet.online.redis.cluster import SLOTS, key_slot
from banquet.online.redis.protocol import SCRIPT_KEYS, encode_script_calls
from banquet.online.redis.store import KEYS_PER_ROUND_TRIP, SCAN_COUNT, RedisOnlineStore

__all__ = [
    "KEYS_PER_ROUND_TRIP",
    "SCAN_COUNT",
    "SCRIPT_KEYS",
    "SLOTS",
    "RedisAddress",
    "RedisOnlineStore",
    "encode_script_calls",
    "key_slot",
    "parse_connection_string",
]
