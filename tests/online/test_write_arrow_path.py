"""Every online store writes from Arrow: ``OnlineStore.write`` hands the batch's columns to
Rust (SQLite's upsert, Redis's HSETNX / script encoders, Postgres's COPY encoder and, under
1000 rows, its binary array parameters), with no Python object per row on the way (issue
#13, "One online write").

How it is checked, for a 10k-row write (and Postgres's small writes: 1 and 999 rows) in each of a store's write modes (first write, newer
rows over stored ones, a repeated key, ``overwrite``, a Redis key ttl): the Rust entry points
are wrapped to record what they get (Arrow arrays, never lists, and every row reaches one);
``pa.array`` refuses a list of more than a few rows; ``ndarray.tolist`` is refused (seen
through ``sys.setprofile``); and the Python lines run inside banquet during the write are
counted (``sys.settrace``): a loop per row would run tens of thousands. (pyarrow's own
``to_pylist`` cannot be patched on its extension types; a list made from it would still have
to reach Rust or ``pa.array``, which both refuse it here.)"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pytest
from store_support import read1, view

from banquet import _core
from banquet.online.base import OnlineStore, rows_batch

if TYPE_CHECKING:
    from conftest import Backend

N = 10_000
BANQUET = str(Path(_core.__file__).resolve().parent)
LINE_BUDGET = 2_000  # Python lines run in banquet per write: waves and calls, not rows
ENCODERS = ("resp_hsetnx", "resp_evalsha", "pg_copy_rows", "pg_array_params", "write_arrays")
ENTRY_POINTS = (*ENCODERS[:-1], "key_slots", "latest_per_key")


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []  # (function, rows it got)

    def rows(self, *names: str) -> int:
        return sum(n for f, n in self.seen if f in names)

    def wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any, **kwargs: Any) -> Any:
            arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, pa.Array)]
            lists = [a for a in (*args, *kwargs.values()) if isinstance(a, (list, tuple))]
            assert arrays, f"{name} got no Arrow array"
            assert all(len(x) <= 3 for x in lists), f"{name} got a list of rows"
            self.seen.append((name, len(arrays[0])))
            return real(*args, **kwargs)

        return spy


class Native:
    """SQLite's native store, its ``write_arrays`` spied on."""

    def __init__(self, real: Any, calls: Calls) -> None:
        self._real = real
        self.write_arrays = calls.wrap("write_arrays", real.write_arrays)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextmanager
def arrow_only(
    monkeypatch: pytest.MonkeyPatch, store: OnlineStore
) -> Iterator[tuple[Calls, list[int]]]:
    calls = Calls()
    for name in ENTRY_POINTS:
        monkeypatch.setattr(_core, name, calls.wrap(name, getattr(_core, name)))
    if hasattr(store, "native"):
        monkeypatch.setattr(store, "native", Native(store.native, calls))
    real_array = pa.array

    def array(obj: Any, *args: Any, **kwargs: Any) -> Any:
        assert not isinstance(obj, (list, tuple)) or len(obj) <= 3, "pa.array from a list"
        return real_array(obj, *args, **kwargs)

    monkeypatch.setattr(pa, "array", array)
    lines = [0]
    where: Counter[tuple[str, int]] = Counter()
    refused: list[str] = []

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(BANQUET):
            return None
        if event == "line":
            lines[0] += 1
            where[(Path(frame.f_code.co_filename).name, frame.f_lineno)] += 1
        return trace

    def profile(frame: Any, event: str, arg: Any) -> None:
        called = getattr(arg, "__qualname__", "") if event == "c_call" else ""
        if called == "ndarray.tolist" and frame.f_code.co_filename.startswith(BANQUET):
            refused.append(called)

    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        yield calls, lines
    finally:
        sys.settrace(None)
        sys.setprofile(None)
        monkeypatch.undo()
    assert not refused, refused
    assert lines[0] < LINE_BUDGET, (
        f"{lines[0]} Python lines ran in banquet for {N} rows; most: {where.most_common(5)}"
    )


def batch(keys: pa.Array, event: int, created: int | None, tag: bytes) -> pa.RecordBatch:
    n = len(keys)
    blobs = pa.array(np.full(n, tag, dtype=object), pa.binary())
    return rows_batch(
        keys,
        pa.array(np.full(n, event, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC")),
        None if created is None else pa.array(np.full(n, created, dtype=np.int64)),
        blobs,
    )


def keys_array(n: int) -> pa.Array:
    return pa.array([i.to_bytes(4, "big") for i in range(n)], pa.binary())


def test_every_write_takes_the_arrow_path(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_arrow_path(backend, monkeypatch, None)


@pytest.mark.postgres
@pytest.mark.parametrize("n", [1, 999])
def test_small_postgres_writes_take_the_arrow_path(
    make_backend: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    """A push (under 1000 rows) is one upsert statement whose arrays Rust builds
    (``pg_array_params``), not lists psycopg adapts."""
    check_arrow_path(make_backend("postgres"), monkeypatch, None, n)


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["redis", "redis_cluster"])
def test_every_redis_write_with_a_key_ttl_takes_the_arrow_path(
    make_backend: Callable[[str], Backend], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A key ttl (a Redis setting) sends every row through the script."""
    check_arrow_path(make_backend(kind), monkeypatch, 3600)


def check_arrow_path(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, ttl: int | None, n: int = N
) -> None:
    store = backend.open(**({"key_ttl_seconds": ttl} if ttl else {}))
    p = backend.project
    store.create_view(p, view("v"))
    keys = keys_array(n)
    k = keys.to_pylist()  # (outside the checked writes)
    small = n < 1000  # Postgres: the one-statement upsert, else COPY
    if backend.kind == "postgres":
        encoder = "pg_array_params" if small else "pg_copy_rows"
        unused = "pg_copy_rows" if small else "pg_array_params"
    else:
        encoder, unused = ENCODERS[0], ""

    with arrow_only(monkeypatch, store) as (calls, _):  # a first write: nothing stored
        store.write(p, "v", batch(keys, 10, None, b"first"))
    assert calls.rows(*ENCODERS) >= n
    if backend.kind == "postgres":
        assert calls.rows(encoder) == n and not calls.rows(unused)

    with arrow_only(monkeypatch, store) as (calls, _):  # newer rows over stored ones
        store.write(p, "v", batch(keys, 20, 0, b"newer"))
    assert calls.rows(*ENCODERS) >= n
    if backend.is_redis:
        assert calls.rows("resp_evalsha") == n  # the script, for every stored key

    with arrow_only(monkeypatch, store) as (calls, _):  # older rows: kept out by the store
        store.write(p, "v", batch(keys, 5, 0, b"older"))
    assert read1(store, p, [k[0], k[-1]]) == [b"newer", b"newer"]

    # a repeated key: the newest row wins (Postgres: one row per key, chosen in Rust)
    # the first d keys once more (a small write stays under 1000 rows)
    d = min(100, n)
    once = n - d if small and n + d >= 1000 else n  # keys written once
    dup = pa.concat_arrays([keys.slice(0, once), keys.slice(0, d)])
    m = len(dup)
    ev = np.full(m, 30, dtype=np.int64)
    ev[m - d :] = 31
    rows = rows_batch(
        dup,
        pa.array(ev),
        pa.array(np.zeros(m, dtype=np.int64)),
        pa.array(np.where(ev == 31, b"dup", b"once").astype(object), pa.binary()),
    )
    with arrow_only(monkeypatch, store) as (calls, _):
        store.write(p, "v", rows)
    assert calls.rows(*ENCODERS) >= m - d
    if backend.kind == "postgres":
        assert calls.rows("latest_per_key") == m and not calls.rows(unused)
    assert read1(store, p, [k[0], k[d - 1]]) == [b"dup", b"dup"]
    if once > d:
        assert read1(store, p, [k[d], k[once - 1]]) == [b"once", b"once"]

    with arrow_only(monkeypatch, store) as (calls, _):  # overwrite: older rows replace
        store.write(p, "v", batch(keys, 1, 0, b"fixed"), overwrite=True)
    assert calls.rows(*ENCODERS) >= n
    assert read1(store, p, [k[0], k[-1]]) == [b"fixed", b"fixed"]
