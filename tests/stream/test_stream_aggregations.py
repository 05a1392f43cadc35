"""banquet ingest into an aggregated StreamFeatureView: the messages are added to each key's
online tiles, and the tiles then give the offline values (``get_historical_features`` over
the same rows, appended to the batch source by ``to="online_and_offline"``) at random
instants, exactly (hopping windows; amounts are multiples of 1/4 so float sums are exact)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from stream_support import Ingest, event, features_py, produce, wait_for, write_repo

from banquet import FeatureStore, _core
from banquet.online import tiles

US = pa.timestamp("us", tz="UTC")
MIN10 = 600_000_000

FEATURES = """\
tx_agg = StreamFeatureView(
    name="tx_agg",
    entities=[user],
    schema=[Field(name="amount", dtype=Float64), Field(name="n", dtype=Int64),
            Field(name="label", dtype=String)],
    source=source,
    aggregations=[
        Aggregation("amount", "count", timedelta(hours=4), timedelta(minutes=10)),
        Aggregation("amount", "sum", timedelta(hours=1), timedelta(minutes=10)),
        Aggregation("amount", "mean", timedelta(hours=2), timedelta(minutes=30)),
        Aggregation("n", "max", timedelta(hours=1), timedelta(minutes=10)),
        Aggregation("label", "last", timedelta(hours=2), timedelta(minutes=10)),
    ],
)
"""


def test_ingested_rows_give_online_equal_offline(tmp_path: Path, kafka: str, topic: Any) -> None:
    t = topic(2)
    repo = write_repo(tmp_path / "r", features_py(FEATURES, kafka, t))
    rng = random.Random(18)
    now = float(int(time.time()))
    users = 12
    events = []
    seen: set[tuple[int, float]] = set()
    for i in range(300):
        user = rng.randrange(users)
        ts = now - rng.randrange(0, 3 * 3600 * 4) / 4  # the last 3 hours, quarter seconds
        if i % 7 == 0:
            ts -= ts % 600  # on a tile boundary: the (e - s, e] edge
        while (user, ts) in seen:  # no ties: "last" needs no arrival order across sides
            ts -= 0.25
        seen.add((user, ts))
        amount = rng.randrange(-40, 400) / 4
        events.append(event(user, ts, amount, rng.randrange(50), f"l{i % 5}"))
    produce(kafka, t, events)

    store = FeatureStore(repo_path=repo)
    view = store.get_feature_view("tx_agg")
    keys = [pa.array(range(users), pa.int64())]
    key_bytes = _core.serialize_entity_keys(view.join_keys, keys).to_pylist()
    now_us = int(now * 1_000_000) + 1

    def counted() -> int:
        # a read one slide later: its window ends past every event (hopping windows end
        # at the slide boundary) and starts before the oldest (4 h > 3 h)
        fresh = FeatureStore(repo_path=repo)
        try:
            _, cols = tiles.read_at(fresh, view, key_bytes, now_us + MIN10)
        finally:
            fresh.online_store.close()
        return sum(c or 0 for c in cols[0])

    def offline_rows() -> int:
        return ds.dataset(repo / "data" / "tx").count_rows()  # type: ignore[no-any-return]

    try:
        with Ingest(repo, batch_rows=64, to="online_and_offline") as ing:

            def done() -> bool:
                assert not ing.result, ing.result  # ingest stopped early: its error
                return counted() == len(events)

            wait_for(done, 60, "every event in the tiles")
            wait_for(lambda: offline_rows() == len(events) + 1, 30, "the offline append")

        # from now on (the tiles expire window + slide before a key's newest event: the
        # online store serves the present, not the past) until every window has passed
        instants = [now_us + rng.randrange(0, 4 * 3600 * 1_000_000) for _ in range(40)]
        instants[:8] = [a - a % MIN10 for a in instants[:8]]  # reads on a slide boundary
        instants.append(now_us)
        names = [f.name for f in view.features]
        entity = pa.table(
            {
                "user_id": pa.array([u for _ in instants for u in range(users)], pa.int64()),
                "event_timestamp": pa.array(
                    [a for a in instants for _ in range(users)], pa.int64()
                ).cast(US),
                "row": pa.array(range(len(instants) * users), pa.int64()),
            }
        )
        off = store.get_historical_features(entity, [f"tx_agg:{n}" for n in names]).to_arrow()
        off = off.sort_by("row")
        non_null = 0
        for j, at in enumerate(instants):
            _, cols = tiles.read_at(store, view, key_bytes, at)
            for f, name in enumerate(names):
                for u in range(users):
                    want = off.column(name)[j * users + u].as_py()
                    got = cols[f][u]
                    if name.startswith("count") and want is None:
                        want = 0
                    assert got == want, (name, u, at, got, want)
                    non_null += got is not None
        assert non_null > len(instants) * users  # the comparison saw real values
    finally:
        store.online_store.close()
