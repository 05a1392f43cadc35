"""``banquet init``: scaffold a working feature repo from a template folder."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from banquet.errors import BanquetError

HERE = Path(__file__).parent
TEMPLATES = ("local", "postgres")  # folders beside this file


def create_repo(target: Path, project: str, template: str = "local") -> None:
    """Copy the template into ``target`` (which must not exist) and generate its data."""
    import re

    if template not in TEMPLATES:
        raise BanquetError(f"unknown template {template!r}; choose one of {list(TEMPLATES)}")
    if target.exists():
        raise BanquetError(f"{target} already exists; choose a new folder name")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", project):
        raise BanquetError(
            f"project name {project!r} must be letters, digits and '_', starting with a letter"
        )
    shutil.copytree(HERE / template, target, ignore=shutil.ignore_patterns("__pycache__"))
    yaml = target / "feature_store.yaml"
    yaml.write_text(yaml.read_text().replace("{{project}}", project))
    write_demo_data(target / "data")


def write_demo_data(folder: Path, users: int = 50, days: int = 14, seed: int = 7) -> None:
    """Deterministic example data: hourly-ish transaction stats and daily profiles per user,
    ending at today's midnight UTC so the example's TTLs leave the values fresh."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    end = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    span_us = int((end - start).total_seconds() * 1_000_000)
    start_us = int(start.timestamp() * 1_000_000)

    n = users * days * 4
    user_id = rng.integers(1001, 1001 + users, n)
    ts = start_us + np.sort(rng.integers(0, span_us, n))
    tx = pa.table(
        {
            "user_id": pa.array(user_id, pa.int64()),
            "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "created": pa.array(ts + 60_000_000, pa.timestamp("us", tz="UTC")),
            "transaction_count": pa.array(rng.integers(0, 40, n), pa.int64()),
            "avg_spend": pa.array(rng.gamma(2.0, 30.0, n).round(2), pa.float32()),
        }
    )
    pq.write_table(tx, folder / "transactions.parquet")

    day_us = 86_400_000_000
    uid = np.repeat(np.arange(1001, 1001 + users), days)
    dts = start_us + np.tile(np.arange(days), users) * day_us
    profiles = pa.table(
        {
            "user_id": pa.array(uid, pa.int64()),
            "event_timestamp": pa.array(dts, pa.timestamp("us", tz="UTC")),
            "age": pa.array(np.repeat(rng.integers(18, 80, users), days), pa.int64()),
            "credit_score": pa.array(rng.normal(650, 60, users * days).round(1), pa.float64()),
            "segment": pa.array(rng.choice(["new", "regular", "vip"], users * days)),
        }
    )
    (folder / "profiles").mkdir(exist_ok=True)  # a directory: offline pushes add files here
    pq.write_table(profiles, folder / "profiles" / "part-0.parquet")
