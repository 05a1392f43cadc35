"""The Rust Parquet scan (``_core.ParquetDataset``) against pyarrow's dataset read on one
Parquet file (default: benches/data/10Mx10k/view_a.parquet, 10M rows x 8 columns, written by
historical.py): a full read, a time-window read, a 1% key semi-join, and the semi-join with the time window
(the scan tests the key column first, then the timestamps of the surviving rows, and decodes
the other columns for the rows left only; pyarrow filters with ``isin``). Wall time, best of ``--repeat``; outputs compared row for row.

    .venv/bin/python benches/scan.py [--path FILE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from banquet._core import ParquetDataset

DEFAULT = Path(__file__).parent / "data" / "10Mx10k" / "view_a.parquet"


def best(fn: Callable[[], pa.Table], repeat: int) -> tuple[float, pa.Table]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    assert out is not None
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--path", default=str(DEFAULT))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    path = args.path
    dataset = ds.dataset(path, format="parquet")
    cols = dataset.schema.names
    key, ts = cols[0], "event_timestamp"
    keys = dataset.to_table(columns=[key]).column(key)
    distinct = pc.unique(keys).to_numpy()
    rng = np.random.default_rng(7)
    wanted = pa.array(rng.choice(distinct, max(1, len(distinct) // 100), replace=False))
    tmin, tmax = pc.min_max(dataset.to_table(columns=[ts]).column(ts)).values()
    lo_us = tmin.value + (tmax.value - tmin.value) // 2
    t_type = dataset.schema.field(ts).type
    print(f"{path}: {dataset.count_rows():,} rows, {len(cols)} columns; {len(wanted):,} keys")

    def rust(**kw: object) -> Callable[[], pa.Table]:
        return lambda: ParquetDataset(path).scan(cols, ts_column=ts, **kw).read_all()  # type: ignore[arg-type]

    cases = [
        ("full read", rust(), lambda: dataset.to_table(columns=cols)),
        (
            "time window (latest half)",
            rust(lo_us=lo_us),
            lambda: dataset.to_table(
                columns=cols,
                filter=ds.field(ts) >= pa.scalar(lo_us, pa.timestamp("us", "UTC")).cast(t_type),
            ),
        ),
        (
            "1% key semi-join",
            rust(key_columns=[key], entity_keys=[wanted]),
            lambda: dataset.to_table(columns=cols, filter=ds.field(key).isin(wanted)),
        ),
        (
            "1% keys + time window",
            rust(key_columns=[key], entity_keys=[wanted], lo_us=lo_us),
            lambda: dataset.to_table(
                columns=cols,
                filter=ds.field(key).isin(wanted)
                & (ds.field(ts) >= pa.scalar(lo_us, pa.timestamp("us", "UTC")).cast(t_type)),
            ),
        ),
    ]
    print(f"{'case':<28}{'banquet scan':>14}{'pyarrow':>12}{'speed-up':>10}  rows")
    for name, ours, theirs in cases:
        t_ours, a = best(ours, args.repeat)
        t_theirs, b = best(theirs, args.repeat)
        assert a.equals(b), name
        print(
            f"{name:<28}{t_ours:>13.3f}s{t_theirs:>11.3f}s{t_theirs / t_ours:>9.1f}x  {a.num_rows:,}"
        )


if __name__ == "__main__":
    main()
