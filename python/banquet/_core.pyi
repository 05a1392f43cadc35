"""Type stubs for the Rust extension ``banquet._core``.

Arguments typed ``ArrowArray`` accept any object exporting ``__arrow_c_array__`` (pyarrow,
polars, arro3, nanoarrow ...). Results are ``pyarrow`` objects, built zero-copy.
Timestamps are microseconds since the Unix epoch, UTC: ``timestamp[us, tz=UTC]`` or ``int64``.
Every function releases the GIL while it works.
"""

from typing import Any, Protocol, final

import pyarrow as pa

from banquet.errors import CorruptDataError as CorruptDataError
from banquet.errors import KernelError as KernelError

__version__: str

class ArrowArray(Protocol):
    def __arrow_c_array__(self, requested_schema: Any = None) -> tuple[Any, Any]: ...

class ArrowSchema(Protocol):
    def __arrow_c_schema__(self) -> Any: ...

class ArrowStream(Protocol):
    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any: ...

# The kernels raise banquet's own classes (all ``BanquetError``): ``KernelError`` (bad input),
# ``KernelTypeError`` (an unsupported column type; also a ``TypeError``), ``CorruptDataError``
# (a stored value that does not decode) and ``ResourceExhausted`` (the allocator refused a
# buffer: the kernels allocate their big buffers fallibly and check their estimated peak
# before they start). ``_core.KernelError`` and ``_core.CorruptDataError`` are those classes
# (imported above).

# --- keys: entity-key serialization (Feast v3 bytes) and hashing ---------------------------

def serialize_entity_keys(
    names: list[str], columns: list[ArrowArray], rows: int | None = None
) -> pa.Array:
    """Serialize N entity keys (one column per join key, N rows) to N ``binary`` values,
    byte-for-byte Feast's ``entity_key_serialization_version: 3``. Keys are written sorted
    by name. Column types: int32, int64, string / large_string / string_view, binary /
    large_binary / binary_view, timestamp of any unit (whole seconds in the bytes, rounded
    down). A null key value raises ``KernelError`` naming the column; a duplicate name or
    mismatched lengths raise ``KernelError``; another column type raises ``KernelTypeError``.
    With no join keys: ``rows`` empty keys, Feast's bytes for an ``EntityKey`` without join
    keys (four zero bytes each: the key count); ``rows`` is then required (given with
    columns, it must equal their length)."""

def hash_entity_keys(keys: ArrowArray) -> pa.Array:
    """A fast, stable 64-bit hash (``uint64``) of each serialized key (xxh3-64, seed 0; the
    same value on every run and platform). ``keys``: binary, large_binary or binary_view;
    a null key hashes to null."""

def key_order(keys: ArrowArray) -> pa.Array:
    """The stable order (``uint32`` indices) that sorts serialized keys bytewise (nulls
    first): B-tree stores insert sorted keys much faster."""

# --- asof: the point-in-time join ----------------------------------------------------------

def asof_join(
    entity_keys: list[ArrowArray],
    entity_ts: ArrowArray,
    feature_keys: list[ArrowArray],
    feature_ts: ArrowArray,
    feature_created: ArrowArray | None,
    ttl_us: int | None,
) -> pa.Array:
    """For each entity row, the index (``uint32``) of the matching feature row, or null.

    A feature row matches when its keys equal the entity row's and
    ``entity_ts - ttl <= feature_ts <= entity_ts``; ``ttl_us`` None or 0 means unbounded.
    The latest ``feature_ts`` wins, then the larger created timestamp (null created sorts
    first), then the larger row index. Null keys or timestamps never match. Key columns are
    compared pairwise (a timestamp key by its whole second, as the serialized key stores it)
    and must have the same types on both sides (else ``KernelError``);
    unsupported column types raise ``KernelTypeError``, a negative ``ttl_us`` ``KernelError``."""

def take_rows(columns: list[ArrowStream], indices: ArrowArray) -> list[pa.Array]:
    """The rows at ``indices`` (``uint32``, as ``asof_join`` returns them; null: a null row)
    of each column (a ``pyarrow.ChunkedArray`` or any Arrow stream), one array per column,
    read straight from the chunks on banquet's threads. An index past the column's end raises
    ``KernelError``; indices of another type ``TypeError``."""

# --- window: point-in-time windowed aggregation ---------------------------------------------

def window_aggregate(
    entity_keys: list[ArrowArray],
    entity_ts: ArrowArray,
    feature_keys: list[ArrowArray],
    feature_ts: ArrowArray,
    feature_created: ArrowArray | None,
    values: list[ArrowArray],
    specs: list[tuple[str, int, int, int | None]],
) -> list[pa.Array]:
    """One array per spec ``(function, value index, window_us, slide_us or None)``, one row
    per entity row: ``function`` of ``values[value index]`` over the feature rows of the
    entity row's key with ``end - window < ts <= end``, ``end`` the entity time (floored to
    ``slide_us`` on the epoch when given). Keys match as in ``asof_join``; nulls are ignored;
    an empty window gives 0 for count/count_distinct/approx_count_distinct and null for the
    rest; a null entity key or time gives null. Outputs: ``int64`` for the counts and the
    sum of an ``int64`` column, ``float64`` for a ``float64`` sum, mean and stddev (sample,
    null below two values), and for min/max/last the ``uint32`` index of the winning
    feature row (take the value from the column). Values: ``int64``/``float64`` for
    sum/mean/stddev/min/max, ``int64``/string/binary for the distinct counts, any type for
    count/last. Wrong types raise ``KernelTypeError``, bad specs or an ``int64`` sum
    overflow ``KernelError``. See ARCHITECTURE.md, "Windowed aggregations"."""

# --- partition: hash partitioning and the per-partition join (a public building block) -----

def partition_ids(keys: list[ArrowArray], n: int, seed: int = 0) -> pa.UInt32Array:
    """One partition id (``uint32``, ``0..n``) per row from the hash of its key columns
    (the one key hash of every kernel: equal keys, compared as they serialize, share a
    partition whatever their layout: int32 and int64, string and large_string, a timestamp
    by its whole second). ``seed`` changes the split (to re-partition a partition). A row
    with a null key gets ``n``; with no key columns every row gets 0. ``n`` must be in
    ``1..2**32-1`` (else ``KernelError``)."""

def partition_order(ids: ArrowArray, n: int) -> tuple[pa.UInt32Array, list[int]]:
    """The stable order grouping rows by partition id (``uint32`` ids, at most ``n``) and the
    ``n + 2`` offsets: partition ``p``'s rows are ``order[offsets[p]:offsets[p + 1]]`` in
    input order; ids equal to ``n`` (null keys) come last."""

def join_partition(
    entity: Any, features: Any, n_keys: int, has_created: bool, ttl_us: int | None
) -> pa.RecordBatch:
    """The point-in-time join of one key partition. ``entity``: a record batch
    ``[k1..kn, ts, row_id]`` (``row_id`` of any type, passed through); ``features``: a record
    batch ``[k1..kn, ts, created (if has_created), f1..fm]`` (key types pairwise equal to the
    entity side's; row order matters: on a full tie the later row wins). Returns
    ``[row_id, f1..fm]``, one row per entity row in entity order, with the values of the
    feature row ``asof_join`` picks (same rules; nulls when none). Any object exporting
    ``__arrow_c_array__`` as a struct (a ``pyarrow.RecordBatch``) is accepted. Wrong column
    counts raise ``KernelError``."""

def thread_count() -> int:
    """The number of threads ``asof_join`` uses in this process: ``BANQUET_THREADS`` (0 or
    unset = one per core, 1 = no pool: on the calling thread), read when the process first needs its pool. A
    process made by ``fork`` builds a pool of its own, so joins keep working in the child. A ``BANQUET_THREADS`` that is not a whole number raises
    ``banquet.errors.ConfigError``."""

# --- latest and values: materialization and the online value codec ------------------------

def latest_per_key(
    keys: list[ArrowArray],
    event_ts: ArrowArray,
    created_ts: ArrowArray | None,
    start_us: int | None,
    end_us: int | None,
) -> pa.Array:
    """Indices (``uint32``, ascending) of the latest row per key among rows with
    ``start_us <= event_ts <= end_us`` (None = unbounded), with the tie rules of
    ``asof_join``: the latest ``event_ts``, then the larger created timestamp (null first),
    then the larger row index. Rows with a null key or a null ``event_ts`` are skipped. Key
    columns take the types of ``serialize_entity_keys`` and compare as they serialize (a
    timestamp key by its whole second)."""

def encode_values(
    event_ts: ArrowArray,
    created_ts: ArrowArray | None,
    columns: list[ArrowArray],
    schema: ArrowSchema | None = None,
) -> pa.Array:
    """Encode N rows into N ``binary`` blobs (layout in ARCHITECTURE.md, "The online value
    codec"). ``event_ts`` must have no nulls; ``created_ts`` may. Column types: bool, int32,
    int64, float32, float64, string, binary (any layout), timestamp[us], and list /
    large_list of those. Pass the view's ``schema`` (one field per column, same types) so the
    blobs' fingerprint covers the feature names as well as the types; ``decode_values`` then
    also detects renamed or reordered features."""

def decode_values(
    blobs: ArrowArray, schema: ArrowSchema
) -> tuple[pa.Array, pa.Array, list[pa.Array]]:
    """Decode N blobs (null = not found) into (event_ts, created_ts, one array per field of
    ``schema``, each of exactly that field's type). Timestamps are ``timestamp[us, UTC]``.
    Null blobs decode to nulls everywhere. A blob written under another schema (the view
    changed since it was materialized) or a damaged blob raises ``CorruptDataError``."""

# --- online: the hot path of get_online_features ---------------------------------------------

@final
class OnlinePlan:
    """A resolved online request on the Rust side (built once per request and registry
    version): its distinct key sets, its views and the output columns in request order."""

    def __new__(
        cls,
        sigs: list[tuple[list[str], list[str], list[str]]],
        views: list[tuple[str, int, ArrowSchema, int | None]],
        outputs: list[tuple[str, int, int]],
        tiles: list[list[tuple[str, str, int, int]] | None] | None = None,
    ) -> OnlinePlan:
        """``sigs``: (join key names, entity column names, banquet kind names: int64, int32,
        string, bytes; others turn ``serve`` off). ``views``: (view name, sig index, value
        schema, ttl in µs or None). ``outputs``: (name, view index, field index).
        ``tiles``: per view None, or an aggregated view's tile specs (``tiles_read``): its
        blobs are tiles, merged at ``now_us`` into the view's aggregate features."""
    def serve(
        self, store: SqliteStore, project: str, entity_rows: Any, now_us: int
    ) -> tuple[dict[str, list[Any]], list[list[int | None]]] | None:
        """The whole request on the SQLite store: (columns, event times per view). Columns:
        the entity columns given, then the outputs (None for nulls, missing keys and values
        older than the view's ttl at ``now_us``; timestamps as UTC µs). None when the entity
        rows are not a list of same-keyed dicts or a dict of lists of exactly int / str /
        bytes keys of the declared kinds (nothing was read; take the general path)."""
    def assemble(
        self, entity: dict[str, list[Any]], blobs: list[list[bytes | None]], now_us: int
    ) -> tuple[dict[str, list[Any]], list[list[int | None]]]:
        """``serve``'s decode-and-assemble half for blobs another store read (one list per
        view, in entity-row order); ``entity`` is copied first into the columns."""

def serialize_key_rows(names: list[str], columns: list[list[Any]], kinds: list[str]) -> list[bytes]:
    """``serialize_entity_keys`` for keys given as Python lists; ``kinds`` are banquet type
    names (int64, int32, string, bytes). A value of another type raises TypeError."""

# --- wire formats of the server online stores ------------------------------------------------
# (encoders in rust/core/src/wire; bad rows, a wrong type, a null key, event time or value,
# or unequal lengths, raise KernelTypeError naming the function)

def pg_copy_rows(
    keys: ArrowArray, event_ts: ArrowArray, created_ts: ArrowArray | None, values: ArrowArray
) -> bytes | None:
    """Rows ``(entity_key, event_ts, created_ts, value)`` as Postgres ``COPY (FORMAT BINARY)``
    data (a null created time is 0); None when a key repeats."""

def pg_array_params(
    keys: ArrowArray, event_ts: ArrowArray, created_ts: ArrowArray | None, values: ArrowArray
) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The same rows as four parameters in Postgres' binary array format (``bytea[]``,
    ``int8[]``, ``int8[]``, ``bytea[]``; a null created time is 0) for one upsert statement;
    None when a key repeats."""

def resp_hsetnx(
    prefix: bytes,
    field: bytes,
    keys: ArrowArray,
    event_ts: ArrowArray,
    created_ts: ArrowArray,
    blobs: ArrowArray,
) -> bytes:
    """``HSETNX <prefix + key> <field> <16-byte stamp + blob>`` per row as one RESP buffer
    (binary keys and blobs; int64 or timestamp[us] times, a null created time is 0)."""

def resp_evalsha(
    sha: bytes,
    prefix: bytes,
    head: list[bytes],
    keys: ArrowArray,
    event_ts: ArrowArray,
    created_ts: ArrowArray | None,
    blobs: ArrowArray,
    per_call: int,
    groups: ArrowArray | None = None,
) -> tuple[bytes, int]:
    """``EVALSHA`` calls of the Redis write script from Arrow rows (binary keys and blobs,
    int64 or timestamp[us] times, a null created time is 0), at most ``per_call`` rows each
    and, with ``groups`` (uint16, one per row), a new call wherever the group changes (a
    cluster's slots, the rows ordered by slot), as one RESP buffer; returns it and the
    number of calls. Bad rows raise ``KernelTypeError``."""

def resp_int_replies(buf: bytes, pos: int, n: int) -> int:
    """Where the ``n`` RESP replies at ``buf[pos:]`` end when all are integer replies (one
    pass in Rust); -1 when the buffer ends first, -2 when another reply is among them."""

def key_slot(key: bytes) -> int:
    """The Redis Cluster slot of ``key`` (CRC16 of the key, or of its non-empty
    ``{hash tag}``, modulo 16384)."""

def key_slots(keys: ArrowArray, prefix: bytes = ...) -> pa.UInt16Array:
    """``key_slot(prefix + key)`` for each key of a binary array without nulls (``prefix``
    default empty)."""

# --- sqlite: the embedded online store ------------------------------------------------------

@final
class SqliteStore:
    """The SQLite online store at ``path`` (bundled SQLite, WAL, synchronous=NORMAL, pooled
    connections with cached prepared statements). Opens the file on first use, creating the
    folder. Failures raise ``banquet.errors.StoreError``; a view without a table names the
    view and says to run ``banquet apply``. Every call releases the GIL while SQLite works."""

    def __new__(cls, path: str) -> SqliteStore: ...
    @property
    def path(self) -> str: ...
    @property
    def checkpointing(self) -> bool:
        """True while a background checkpoint runs (one starts after a write leaves 1000+
        pages in the WAL)."""
    def create_view(self, project: str, view: str) -> None: ...
    def drop_view(self, project: str, view: str) -> None: ...
    def teardown(self, project: str) -> None:
        """Drop every table recorded for ``project`` in ``banquet_views``."""
    def close(self) -> None:
        """Close the idle connections; the store reconnects on its next use."""
    def hold_checkpoints(self) -> None:
        """Hold back background WAL checkpoints (counted) until the matching release;
        past 256 MiB of WAL one runs anyway."""
    def release_checkpoints(self) -> None:
        """Undo one hold; the last release starts the checkpoint held back, in the
        background."""
    def write_arrays(
        self,
        project: str,
        view: str,
        keys: ArrowArray,
        event_ts: ArrowArray,
        created_ts: ArrowArray | None,
        values: ArrowArray,
        overwrite: bool = False,
    ) -> int:
        """Upsert in one transaction, in key order; a row replaces the stored one only if its
        ``(event_ts, created_ts)`` is not older (``overwrite``: always). Binary keys and
        values, int64 or timestamp[us] times (a null created time is stored as 0). Any
        failure writes nothing."""
    def read(
        self, project: str, requests: list[tuple[str, list[bytes]]]
    ) -> list[list[bytes | None]]:
        """Per ``(view, keys)``: the stored value per key, None when absent."""
    def query(self, sql: str, params: list[Any] = ...) -> list[tuple[Any, ...]]:
        """Rows of one SQL statement, through this SQLite (for inspection and tests)."""

# --- the Parquet scan (offline file store) ----------------------------------------------------
# Errors name the path, never credentials: ``SourceFileNotFound`` (no such file, bucket or
# object), ``SourceAccessDenied``, ``SourceUnreachable`` (an S3 endpoint), ``DataSourceError``
# (not Parquet, corrupt, a file whose columns do not fit the first file's types). An error
# met while the reader is being read surfaces as a pyarrow error with that message.

@final
class ParquetDataset:
    """A Parquet file, a directory or a hive-partitioned directory (local, or
    ``s3://bucket/key`` with ``storage_options``: endpoint, region, access_key_id,
    secret_access_key, session_token, allow_http), listed and its footers read once. Files
    are read in path order; names starting with ``.`` or ``_`` are skipped."""

    def __new__(
        cls, path: str, storage_options: dict[str, str] | None = None
    ) -> ParquetDataset: ...
    @property
    def schema(self) -> pa.Schema:
        """The first file's columns, then the partition columns (int32 when every value is
        an integer, else string)."""
    @property
    def files(self) -> list[str]:
        """The files, in the order they are read."""
    @property
    def num_rows(self) -> int:
        """Rows in the dataset (every row group of every file, per the footers)."""
    def scan(
        self,
        columns: list[str],
        ts_column: str | None = None,
        lo_us: int | None = None,
        hi_us: int | None = None,
        key_columns: list[str] = ...,
        entity_keys: list[ArrowArray] | None = None,
        batch_rows: int = 65536,
        locate: bool = False,
    ) -> pa.RecordBatchReader:
        """Rows of ``columns`` with ``lo_us <= ts_column <= hi_us`` (UTC µs, None: unbounded;
        a bound in seconds or milliseconds is floored; with no bound a null timestamp is
        kept), and with ``entity_keys`` only rows whose ``key_columns`` tuple (no null)
        occurs among the entity keys' tuples (integers compared as int64, any string layout
        alike). Row groups are pruned by statistics and read in parallel; the non-key,
        non-timestamp columns are decoded only for surviving rows. Source order kept. With
        ``locate``, each batch ends with a ``__banquet_row`` column (``uint64``, the row's
        file index and row in file) for ``take``."""
    def take(self, columns: list[str], locators: ArrowArray) -> pa.RecordBatch:
        """The rows of ``columns`` at ``locators`` (``uint64`` values of a ``locate`` scan
        of this dataset; null allowed: a row of nulls), one row per locator in its order.
        Each row group is read with a selection of its asked rows only."""

def scan_parquet(
    path_or_url: str,
    columns: list[str],
    ts_column: str | None = None,
    lo_us: int | None = None,
    hi_us: int | None = None,
    key_columns: list[str] = ...,
    entity_keys: list[ArrowArray] | None = None,
    storage_options: dict[str, str] | None = None,
    batch_rows: int = 65536,
) -> pa.RecordBatchReader:
    """``ParquetDataset(path_or_url, storage_options).scan(...)`` in one call."""

def parquet_schema(path_or_url: str, storage_options: dict[str, str] | None = None) -> pa.Schema:
    """``ParquetDataset(path_or_url, storage_options).schema``."""

# --- tiles: online aggregation tiles (ARCHITECTURE.md, "Online aggregation tiles") ------------

def tiles_build(
    keys: ArrowArray,
    event_ts: ArrowArray,
    created_ts: ArrowArray | None,
    values: list[ArrowArray],
    specs: list[tuple[str, str, int, int]],
) -> tuple[list[bytes], list[bytes]]:
    """Rows (``binary`` serialized keys, ``int64`` UTC µs event and created times, one value
    column per spec: ``int64`` / ``float64`` / ``binary`` for the spec's kind ``"int"`` /
    ``"float"`` / ``"bytes"``) to one tile blob per distinct key, keys in byte order. A spec
    is ``(function, kind, window_us, slide_us)``; the slide must divide the window
    (``KernelError``)."""

def tiles_merge(
    old: list[bytes | None],
    new: list[bytes],
    specs: list[tuple[str, str, int, int]],
    replace: tuple[int, int] | None = None,
) -> tuple[list[int], list[bytes]]:
    """Per row, ``new``'s tiles merged into ``old``'s (None: nothing stored): with
    ``replace=(lo, hi)`` the tiles lying wholly in ``(lo, hi]`` (and the one holding ``hi``)
    are replaced (a materialization), else added (pushes); then tiles ending at or before
    ``newest - window - slide`` are dropped. Returns (newest event time, blob) per row. A
    blob of another definition raises ``CorruptDataError``."""

def tiles_read(
    blobs: list[bytes | None], specs: list[tuple[str, str, int, int]], at_us: int
) -> tuple[list[int | None], list[pa.Array]]:
    """The aggregates at ``at_us``: per blob its newest event time (None: no blob), and per
    spec one array over the tiles with ``T - window < end <= T``, ``T = floor(at_us,
    slide)``: ``int64`` for the counts, an ``int``-kind sum and ``int``-kind min/max/last;
    ``binary`` for ``bytes``-kind min/max/last; ``float64`` otherwise. Null for a missing
    blob and for empty windows (counts: 0)."""
