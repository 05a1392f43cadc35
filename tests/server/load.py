"""A bounded concurrent load: pushers and readers on threads, each with its own keep-alive
connection, for a few seconds; then every pushed row is read back."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any

from server_support import Client, Server, features_of

ROWS_PER_PUSH = 5


def run_load(
    server: Server, *, seconds: float = 3.0, pushers: int = 2, readers: int = 2
) -> dict[str, Any]:
    """Returns counts and every failure seen (status, body) - expected to be none."""
    failures: list[Any] = []
    pushed: list[list[int]] = [[] for _ in range(pushers)]
    counts = {"push": 0, "read": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def pusher(i: int) -> None:
        with contextlib.closing(Client(server.port)) as conn:
            push_until_stop(i, conn)

    def reader(i: int) -> None:
        with contextlib.closing(Client(server.port)) as conn:
            read_until_stop(i, conn)

    def push_until_stop(i: int, conn: Client) -> None:
        next_id = 1_000_000 * (i + 1)
        while time.monotonic() < stop:
            ids = list(range(next_id, next_id + ROWS_PER_PUSH))
            next_id += ROWS_PER_PUSH
            now = datetime.now(timezone.utc).isoformat()
            df = {
                "user_id": ids,
                "event_timestamp": [now] * len(ids),
                "clicks": [u * 2 for u in ids],
                "score": [u / 2 for u in ids],
                "label": [f"u{u}" for u in ids],
                "seen": [now] * len(ids),
                "blob": [None] * len(ids),
                "tags": [["t"]] * len(ids),
            }
            status, body = conn.post("/push", {"push_source_name": "stats_push", "df": df})
            if status != 200:
                failures.append(("push", status, body))
                return
            pushed[i].extend(ids)
            with lock:
                counts["push"] += 1

    def read_until_stop(i: int, conn: Client) -> None:
        rng = random.Random(i)
        while time.monotonic() < stop:
            ids = [rng.choice([1, 2, 3, 9])]
            for p in pushed:
                if p:
                    ids.append(p[rng.randrange(len(p))])
            status, body = conn.post(
                "/get-online-features",
                {
                    "features": ["stats:clicks", "stats_small:clicks"],
                    "entities": {"user_id": ids},
                    "full_feature_names": True,
                },  # fmt: skip
            )
            if status != 200:
                failures.append(("read", status, body))
                return
            got = features_of(body)["stats__clicks"]["values"]
            wrong = [(u, v) for u, v in zip(ids[1:], got[1:]) if v != u * 2]
            if wrong:
                failures.append(("read", "a pushed row read back wrong", wrong))
                return
            with lock:
                counts["read"] += 1

    threads = [threading.Thread(target=pusher, args=(i,)) for i in range(pushers)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)

    # every pushed row, from both views the source feeds, read back after the load
    everything = [u for p in pushed for u in p]
    for start in range(0, len(everything), 500):
        ids = everything[start : start + 500]
        status, body = server.post(
            "/get-online-features",
            {
                "features": ["stats:clicks", "stats:label", "stats_small:clicks"],
                "entities": {"user_id": ids},
                "full_feature_names": True,
            },  # fmt: skip
        )
        got = features_of(body) if status == 200 else {}
        if status != 200 or (
            got["stats__clicks"]["values"] != [u * 2 for u in ids]
            or got["stats__label"]["values"] != [f"u{u}" for u in ids]
            or got["stats_small__clicks"]["values"] != [u * 2 for u in ids]
        ):
            failures.append(("final read", status, "pushed rows missing or wrong"))
    return {**counts, "rows": len(everything), "failures": failures}
