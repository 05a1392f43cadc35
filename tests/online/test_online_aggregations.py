"""Online aggregation tiles on every online store: after a materialization and after pushes,
the online aggregates equal the offline ones (``get_historical_features``) at 1,000 random
instants; ``get_online_features`` serves them; views without ``slide_interval`` cannot be
online."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from banquet import FeatureStore, _core
from banquet.errors import DefinitionError
from banquet.online import tiles
from banquet.store import PushMode

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import Backend

UTC = timezone.utc
US = pa.timestamp("us", tz="UTC")
HOUR = 3_600_000_000
MIN10 = HOUR // 6

FEATURES = """\
from datetime import timedelta as td

from banquet import Entity, FeatureView, Field, FileSource, PushSource
from banquet.aggregation import Aggregation as A
from banquet.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"])
events = FileSource(name="events", path="data/events.parquet", timestamp_field="ts")
pushed = PushSource(name="pushed", batch_source=events)
m10, m30, h1 = td(minutes=10), td(minutes=30), td(hours=1)
agg = FeatureView(
    name="agg",
    entities=[user],
    schema=[Field(name="amount", dtype=Float64), Field(name="qty", dtype=Int64),
            Field(name="item", dtype=String)],
    source=pushed,
    aggregations=[
        A("amount", "count", td(hours=1), m10),
        A("qty", "sum", td(hours=2), m30),
        A("amount", "sum", td(hours=1), m10),
        A("amount", "mean", td(hours=3), h1),
        A("amount", "max", td(hours=2), m10),
        A("qty", "min", td(hours=1), m10),
        A("item", "last", td(hours=2), m10),
        A("amount", "stddev", td(hours=2), m30),
        A("item", "count_distinct", td(hours=3), h1),
        A("qty", "approx_count_distinct", td(hours=3), h1),
    ],
)
"""


def _events(rng: random.Random, n: int, lo: int, hi: int, users: int) -> pa.Table:
    ts = []
    for _ in range(n):
        t = rng.randrange(lo, hi)
        if rng.random() < 0.15:  # on a tile boundary: the (e - s, e] edge
            t -= t % MIN10
        ts.append(t)
    if n > 3:  # ties: a key's rows at one instant (the later row is "last")
        ts[1] = ts[0]
    return pa.table(
        {
            "user_id": pa.array([rng.randrange(users) for _ in range(n)], pa.int64()),
            "ts": pa.array(ts, pa.int64()).cast(US),
            # multiples of 1/4: float sums are exact, so sum/mean agree bit for bit
            "amount": pa.array(
                [None if rng.random() < 0.1 else rng.randrange(-40, 400) / 4 for _ in range(n)],
                pa.float64(),
            ),
            "qty": pa.array([rng.randrange(0, 30) for _ in range(n)], pa.int64()),
            "item": pa.array([rng.choice("abcdefgh") for _ in range(n)]),
        }
    )


@pytest.fixture
def repo(backend: Backend, tmp_path: Path) -> Iterator[tuple[Path, FeatureStore]]:
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "feature_store.yaml").write_text(
        f"project: {backend.project}\nregistry: data/registry.db\nprovider: local\n"
        + backend.yaml()
        + "offline_store:\n  type: file\n"
    )
    (root / "features.py").write_text(FEATURES)
    store = FeatureStore(repo_path=root)
    try:
        yield root, store
    finally:
        store.teardown()
        store.online_store.close()


def _same(a: Any, b: Any, name: str) -> bool:
    if a is None or b is None:
        return a is b
    if name.startswith("stddev"):  # Welford per tile + Chan's merge vs Welford with removal
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _compare(store: FeatureStore, rng: random.Random, lo: int, hi: int, users: int) -> int:
    """Online (tiles read at the instant) vs offline (historical join) for 1,000 random
    (key, instant) pairs with instants in [lo, hi]; returns how many values were non-null."""
    view = store.get_feature_view("agg")
    keys = [rng.randrange(users) for _ in range(1000)]
    ats = [rng.randrange(lo, hi) for _ in range(1000)]
    ats[:50] = [a - a % MIN10 for a in ats[:50]]  # reads on a slide boundary
    entity = pa.table(
        {
            "user_id": pa.array(keys, pa.int64()),
            "event_timestamp": pa.array(ats, pa.int64()).cast(US),
            "row": pa.array(range(1000), pa.int64()),
        }
    )
    names = [f.name for f in view.features]
    off = (
        store.get_historical_features(entity, [f"agg:{n}" for n in names]).to_arrow().sort_by("row")
    )
    key_bytes = _core.serialize_entity_keys(["user_id"], [pa.array(keys, pa.int64())]).to_pylist()
    present = 0
    for i, (k, at) in enumerate(zip(key_bytes, ats)):
        _, cols = tiles.read_at(store, view, [k], at)
        for n, col in zip(names, cols):
            want = off.column(n)[i].as_py()
            got = col[0]
            if n.startswith(("count", "approx")) and want is None:
                want = 0  # a key with no rows at all: offline null, online count 0
            assert _same(got, want, n), (n, keys[i], at, got, want)
            present += got is not None
    return present


def test_online_equals_offline_at_random_instants(repo: tuple[Path, FeatureStore]) -> None:
    root, store = repo
    rng = random.Random(18)
    users = 12
    now = datetime.now(UTC)
    now_us = int(now.timestamp() * 1_000_000)
    t0 = now_us - now_us % HOUR - 4 * HOUR
    pq.write_table(_events(rng, 3000, t0, t0 + 3 * HOUR, users), root / "data" / "events.parquet")
    store.apply()
    store.materialize(now - timedelta(days=1), now)
    end = t0 + 3 * HOUR
    assert _compare(store, rng, end, end + 3 * HOUR + MIN10, users) > 2000
    # materializing again changes nothing (tiles are recomputed whole)
    store.materialize(now - timedelta(hours=6), now)
    assert _compare(store, rng, end, end + 3 * HOUR, users) > 2000

    # pushes (to both sides) add to the tiles; the offline side gets the same rows
    later = _events(rng, 400, end, end + HOUR // 2, users)
    for lo in range(0, 400, 100):
        store.push("pushed", later.slice(lo, 100), to=PushMode.ONLINE_AND_OFFLINE)
    end += HOUR // 2
    assert _compare(store, rng, end, end + 3 * HOUR, users) > 2000

    # get_online_features serves the tiles' value at now, equal to the offline one
    rows = [{"user_id": u} for u in range(users)]
    names = [f.name for f in store.get_feature_view("agg").features]
    served = store.get_online_features([f"agg:{n}" for n in names], rows).to_dict()
    stamp = datetime.now(UTC)
    entity = pa.table(
        {
            "user_id": pa.array(range(users), pa.int64()),
            "event_timestamp": pa.array([stamp] * users, US),
        }
    )
    off = store.get_historical_features(entity, [f"agg:{n}" for n in names]).to_arrow()
    off = off.sort_by("user_id")
    for n in names:
        for u in range(users):
            want = off.column(n)[u].as_py()
            if n.startswith(("count", "approx")) and want is None:
                want = 0
            assert _same(served[n][u], want, n), (n, u)


def test_audit_of_an_aggregated_view(repo: tuple[Path, FeatureStore]) -> None:
    root, store = repo
    now = datetime.now(UTC)
    now_us = int(now.timestamp() * 1_000_000)
    t0 = now_us - now_us % HOUR - 4 * HOUR
    table = _events(random.Random(5), 500, t0, t0 + 3 * HOUR, 6)
    pq.write_table(table, root / "data" / "events.parquet")
    store.apply()
    store.materialize(now - timedelta(days=1), now)
    report = store.audit(sample=10)
    assert report.ok, report.to_table()
    assert report.views[0].keys_checked == 6
    # a late row pushed to the online store only, inside the last hour: the windows ending
    # at the watermark disagree (counts, sums, ...), reported as "different"
    late = table.slice(0, 1).set_column(1, "ts", pa.array([now - timedelta(minutes=45)], US))
    late = late.set_column(3, "qty", pa.array([1000], pa.int64()))
    store.push("pushed", late)
    report = store.audit(sample=10)
    assert not report.ok
    user = late.column("user_id")[0].as_py()
    bad = {(d.key["user_id"], d.reason) for d in report.differences}
    assert bad == {(user, "different")}
    assert any(d.feature == "sum_qty_7200s" for d in report.differences)


def test_online_views_need_a_slide_interval(repo: tuple[Path, FeatureStore]) -> None:
    root, store = repo
    (root / "features.py").write_text(
        FEATURES.replace('A("qty", "sum", td(hours=2), m30)', 'A("qty", "sum", td(hours=2))')
    )
    pq.write_table(_events(random.Random(1), 10, 0, HOUR, 2), root / "data" / "events.parquet")
    with pytest.raises(DefinitionError, match="slide_interval"):
        FeatureStore(repo_path=root).apply()
    (root / "features.py").write_text(
        FEATURES.replace(
            'A("qty", "sum", td(hours=2), m30)', 'A("qty", "sum", td(hours=2))'
        ).replace("    source=pushed,\n", "    source=pushed,\n    online=False,\n")
    )
    FeatureStore(repo_path=root).apply()  # offline only: fine
