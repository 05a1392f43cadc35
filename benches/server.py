"""The feature server over HTTP: ``banquet serve`` against ``feast serve`` (Feast 0.67), one
worker each, on the same data and the same online store (SQLite, then Redis).

Data: benches/online.py's generated data (two views of 10 features each, int64 key
``user_id``), both systems' repos defined by online.py's ``_defs`` and materialized over the
same window (each system by its own process, in its own venv). Per online store and system:

1. ``setup`` child (the system's interpreter): write the repo, apply, materialize; not timed.
2. start the server (``banquet serve`` / ``feast serve --no-access-log --max-requests
   1000000``, so gunicorn does not recycle Feast's worker mid-run), wait for ``/health``;
3. check a sample of keys: both servers must return the same values, and Feast's own client
   (its ``remote`` online store) reading from ``banquet serve`` gets them too;
4. load phases, each ``--seconds`` long after a 1 s warm-up, every request
   ``POST /get-online-features`` for 20 features (2 views x 10) and 1 or 100 random existing
   keys: one client (latency at light load), then ``--clients`` concurrent clients
   (throughput). Clients are processes sending raw HTTP/1.1 on a keep-alive loopback socket
   (a request costs the client ~10 us, not http.client's ~100 us), timing each request from
   its send to the last byte of the response with ``time.perf_counter_ns``; a non-200 answer
   counts as an error.

Each server is started ``--repeat`` times (default 2), the systems alternating, so both meet
the same spells of other work on a shared machine; per cell the table keeps the run with the
most requests/s, with that run's p50 and p99 (every run is printed and kept in
``server_results.json``).

The machine has few cores: the clients share them with the server, so requests/s are lower
than a dedicated load generator would show, for both systems alike.

    .venv/bin/python benches/server.py                 # SQLite and Redis, 5 s phases
    .venv/bin/python benches/server.py --quick         # 2 s phases
    .venv/bin/python benches/server.py --stores redis  # one store
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

import online  # noqa: E402

PEERS = ["banquet", "feast"]
STORES = ["sqlite", "redis"]
ENTITY_COUNTS = [1, 100]
REDIS_DB = 3  # tests use db 0; the benchmark's keys stay apart and are torn down at the end
TARGET_P99_1_MS = 2.0
TARGET_RPS_RATIO = 5.0


# --- repos -------------------------------------------------------------------------------------


def redis_address() -> str:
    host = os.environ.get("BANQUET_REDIS_HOST", "127.0.0.1")
    port = os.environ.get("BANQUET_REDIS_PORT", "56379")
    return f"{host}:{port}"


def online_yaml(store: str) -> str:
    if store == "sqlite":
        return "online_store:\n  type: sqlite\n  path: data/online_store.db\n"
    password = os.environ.get("BANQUET_REDIS_PASSWORD", "")
    auth = f",password={password}" if password else ""  # the local Redis has requirepass
    return f"online_store:\n  type: redis\n  connection_string: '{redis_address()},db={REDIS_DB}{auth}'\n"


def repo_dir(d: Path, peer: str, store: str) -> Path:
    return d / f"server_{peer}_{store}_repo"


def project(peer: str, store: str) -> str:
    return f"bench_server_{peer}_{store}"


def child_setup(args: argparse.Namespace) -> None:
    """In the peer's interpreter: a fresh repo, applied and materialized."""
    import shutil

    d = Path(args.data).resolve()
    repo = repo_dir(d, args.peer, args.store)
    if repo.exists():
        _teardown(args.peer, repo)
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        f"project: {project(args.peer, args.store)}\nprovider: local\nregistry: data/registry.db\n"
        f"{online_yaml(args.store)}offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    (repo / "definitions.py").write_text(online._defs(args.peer, d))
    t = time.perf_counter()
    if args.peer == "banquet":
        from banquet import FeatureStore

        store = FeatureStore(repo_path=repo)
        store.apply()
    else:
        import importlib.util

        from feast import FeatureStore as FeastStore

        spec = importlib.util.spec_from_file_location("bench_defs", repo / "definitions.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        store = FeastStore(repo_path=str(repo))
        store.apply(mod.OBJECTS)
    store.materialize(online.WINDOW_START, online.WINDOW_END)
    C.report({"setup": args.peer, "store": args.store, "materialize_s": time.perf_counter() - t})


def child_feast_client(args: argparse.Namespace) -> None:
    """In Feast's venv: Feast's own client (its ``remote`` online store, which calls
    ``/get-online-features``) reading from the server at ``--port``."""
    import importlib.util
    import shutil

    from feast import FeatureStore as FeastStore

    d = Path(args.data).resolve()
    repo = d / "server_feast_client_repo"
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        f"project: {project('banquet', args.store)}\nprovider: local\nregistry: data/registry.db\n"
        f"online_store:\n  type: remote\n  path: http://127.0.0.1:{args.port}\n"
        "offline_store:\n  type: file\nentity_key_serialization_version: 3\n"
    )
    (repo / "definitions.py").write_text(online._defs("feast", d))
    spec = importlib.util.spec_from_file_location("bench_defs", repo / "definitions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    store = FeastStore(repo_path=str(repo))
    store.apply(mod.OBJECTS)
    rows = [{"user_id": k} for k in json.loads(args.sample_keys)]
    got = store.get_online_features(features=online.FEATURE_REFS, entity_rows=rows).to_dict()
    C.report({"values": got})


def child_teardown(args: argparse.Namespace) -> None:
    _teardown(args.peer, repo_dir(Path(args.data), args.peer, args.store))
    C.report({"teardown": args.peer})


def _teardown(peer: str, repo: Path) -> None:
    if not (repo / "feature_store.yaml").exists():
        return
    try:
        if peer == "banquet":
            from banquet import FeatureStore

            FeatureStore(repo_path=repo).teardown()
        else:
            from feast import FeatureStore as FeastStore

            FeastStore(repo_path=str(repo)).teardown()
    except Exception as e:  # a half-made repo from an interrupted run: nothing to keep
        print(f"teardown of {repo}: {e}", flush=True)


# --- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(peer: str, repo: Path, port: int, log: Path) -> subprocess.Popen:
    if peer == "banquet":
        cmd = [str(C.BANQUET_PY), "-m", "banquet.cli", "-c", str(repo), "serve"]
        cmd += ["--port", str(port), "--workers", "1"]
    else:
        cmd = [str(C.PEERS_VENV / "bin" / "feast"), "-c", str(repo), "serve", "--port", str(port)]
        cmd += ["--workers", "1", "--no-access-log", "--max-requests", "1000000"]
    out = open(log, "wb")  # noqa: SIM115 - the child holds it; closed with the process
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: gunicorn's worker too
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            status, _ = http_call(port, "GET", "/health", b"")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no healthy answer within {timeout:.0f}s")


# --- the HTTP client ---------------------------------------------------------------------------


def request_bytes(method: str, path: str, body: bytes) -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class RawClient:
    """HTTP/1.1 on one keep-alive socket; answers must carry Content-Length."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += self._recv()
        self.buf = rest[length:]
        return status, rest[:length]

    def _more(self) -> None:
        self.buf += self._recv()

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def http_call(port: int, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    c = RawClient(port)
    try:
        return c.call(request_bytes(method, path, body))
    finally:
        c.close()


def _client_loop(port: int, requests: list[bytes], warm_s: float, run_s: float, out: Any) -> None:
    """One load client (a process): sequential requests until the time is up."""
    client = RawClient(port)
    lat: list[int] = []
    errors = 0
    first_error = ""
    t_measure = time.perf_counter_ns() + int(warm_s * 1e9)
    t_end = t_measure + int(run_s * 1e9)
    i = 0
    n = len(requests)
    while True:
        t0 = time.perf_counter_ns()
        if t0 >= t_end:
            break
        status, body = client.call(requests[i % n])
        t1 = time.perf_counter_ns()
        i += 1
        if t0 >= t_measure:
            lat.append(t1 - t0)
            if status != 200:
                errors += 1
                first_error = first_error or f"{status}: {body[:200]!r}"
    client.close()
    out.send((lat, errors, first_error))
    out.close()


def run_phase(port: int, requests: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    pipes = []
    procs = []
    for _ in range(clients):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_client_loop, args=(port, requests, 1.0, seconds, send))
        p.start()
        procs.append(p)
        pipes.append(recv)
    lat: list[int] = []
    errors = 0
    first_error = ""
    for recv, p in zip(pipes, procs):
        got_lat, got_err, got_first = recv.recv()
        p.join()
        lat += got_lat
        errors += got_err
        first_error = first_error or got_first
    lat.sort()
    n = len(lat)

    def pct(q: float) -> float:
        return lat[min(n - 1, int(q * n))] / 1e6 if n else float("nan")

    return {
        "clients": clients,
        "requests": n,
        "rps": n / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1] / 1e6 if n else float("nan"),
        "errors": errors,
        "first_error": first_error,
    }


def make_requests(keys: list[int], entities: int, count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        body = json.dumps(
            {
                "features": online.FEATURE_REFS,
                "entities": {"user_id": [rng.choice(keys) for _ in range(entities)]},
            }
        ).encode()
        out.append(request_bytes("POST", "/get-online-features", body))
    return out


def sample_values(port: int, keys: list[int]) -> dict[str, list[Any]]:
    body = json.dumps({"features": online.FEATURE_REFS, "entities": {"user_id": keys}}).encode()
    status, answer = http_call(port, "POST", "/get-online-features", body)
    if status != 200:
        raise RuntimeError(f"sample request failed: {status} {answer[:300]!r}")
    doc = json.loads(answer)
    return {
        name: res["values"] for name, res in zip(doc["metadata"]["feature_names"], doc["results"])
    }


def feast_client_check(
    me: str, d: Path, store: str, port: int, keys: list[int], samples: dict[str, Any]
) -> str:
    r = C.run_child(
        [
            str(C.PEERS_PY),
            me,
            "feast-client",
            "--data",
            str(d),
            "--store",
            store,
            "--port",
            str(port),
            "--sample-keys",
            json.dumps(keys),
        ],  # fmt: skip
        600,
        d / "logs" / "srv_feast_client.log",
    )
    if not r.ok:
        return f"FAILED: {r.error}"
    problems = same_values(r.result["values"], samples[store]["banquet"])
    return "same values as banquet's own answer" if not problems else f"DIFFERENT: {problems[:3]}"


def same_values(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> list[str]:
    problems = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name), b.get(name)
        if va is None or vb is None or len(va) != len(vb):
            problems.append(f"{name}: missing or different length")
            continue
        for x, y in zip(va, vb):
            if isinstance(x, float) and isinstance(y, float):
                if abs(x - y) > 1e-6 * max(1.0, abs(x)):
                    problems.append(f"{name}: {x} != {y}")
                    break
            elif x != y:
                problems.append(f"{name}: {x!r} != {y!r}")
                break
    return problems


# --- the run -----------------------------------------------------------------------------------


def wait_for_load(max_load: float, max_wait_s: float) -> None:
    """Wait (at most ``max_wait_s``) until the 1-minute load average is at most ``max_load``:
    the machine is shared, and latency percentiles mean little on a saturated one."""
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)
    print(f"load average when the runs start: {os.getloadavg()}", flush=True)


def run_all(args: argparse.Namespace) -> None:
    import numpy as np

    d = online.ensure_data(args.keys, args.rows_per_key)
    logs = d / "logs"
    logs.mkdir(exist_ok=True)
    info = C.machine_info()
    print(f"machine: {C.machine_line(info)}")
    print(f"command: {' '.join(sys.argv)}")
    print(f"load average at the start: {os.getloadavg()}", flush=True)
    if not args.no_wait:
        C.wait_until_quiet(args.wait_max)
        wait_for_load(args.max_load, args.wait_max)
    keys = [int(k) for k in np.load(d / "keys.npy")]
    me = str(Path(__file__).resolve())
    stores = [s for s in args.stores.split(",") if s]
    samples: dict[str, dict[str, dict[str, list[Any]]]] = {}
    sample_keys = random.Random(7).sample(keys, 20) + [-1, -2]  # and two absent keys
    loads = []
    client_check = "not run"
    runs: dict[str, list[dict[str, Any]]] = {}  # "peer/store/entities/clients" -> every run
    for store in stores:
        ready = []
        for peer in PEERS:
            py = str(C.BANQUET_PY if peer == "banquet" else C.PEERS_PY)
            common = ["--peer", peer, "--store", store, "--data", str(d)]
            r = C.run_child(
                [py, me, "setup", *common], 1800, logs / f"srv_setup_{peer}_{store}.log"
            )
            if not r.ok:
                print(f"  {peer} {store}: setup FAILED: {r.error}", flush=True)
                continue
            ready.append(peer)
            print(
                f"  {peer:7} {store:6} applied + materialized in {r.result['materialize_s']:.1f}s"
            )
        # The runs alternate between the systems, so both see the same spells of other work.
        for rep in range(args.repeat):
            for peer in ready:
                port = free_port()
                proc = start_server(
                    peer, repo_dir(d, peer, store), port, logs / f"srv_{peer}_{store}.log"
                )
                try:
                    wait_healthy(port, proc, 180)
                    if rep == 0:
                        samples.setdefault(store, {})[peer] = sample_values(port, sample_keys)
                    if rep == 0 and peer == "banquet" and store == stores[0]:
                        client_check = feast_client_check(me, d, store, port, sample_keys, samples)
                        print(f"  Feast's remote-online-store client against banquet serve: {client_check}")  # fmt: skip
                    for n_ent in ENTITY_COUNTS:
                        reqs = make_requests(keys, n_ent, 2000, seed=n_ent)
                        for clients in (1, args.clients):
                            loads.append(os.getloadavg()[0])
                            res = run_phase(port, reqs, clients, args.seconds)
                            res["load_before"] = loads[-1]
                            res["run"] = rep + 1
                            runs.setdefault(f"{peer}/{store}/{n_ent}/{clients}", []).append(res)
                            print(
                                f"  run {rep + 1} {peer:7} {store:6} {n_ent:3} entities x "
                                f"{clients} clients: p50 {res['p50_ms']:7.3f} ms  "
                                f"p99 {res['p99_ms']:7.3f} ms  {res['rps']:8.0f} req/s  "
                                f"errors {res['errors']}  (load {res['load_before']:.1f})"
                                + (f" ({res['first_error']})" if res["errors"] else ""),
                                flush=True,
                            )
                finally:
                    stop_server(proc)
        if store == "redis":
            for peer in ready:
                py = str(C.BANQUET_PY if peer == "banquet" else C.PEERS_PY)
                common = ["--peer", peer, "--store", store, "--data", str(d)]
                C.run_child([py, me, "teardown", *common], 300, logs / f"srv_teardown_{peer}.log")
        if len(samples.get(store, {})) == 2:
            problems = same_values(samples[store]["banquet"], samples[store]["feast"])
            print(f"  {store}: sample of {len(sample_keys)} keys: "
                  + ("same values in both" if not problems else f"DIFFERENT: {problems[:3]}"))  # fmt: skip
            samples[store]["problems"] = problems  # type: ignore[assignment]
    # Per cell, the run with the most requests/s (its own p50 and p99) among runs without
    # errors: the machine is shared, and that run is the one least disturbed by other work.
    results = {k: max(v, key=lambda r: (r["errors"] == 0, r["rps"])) for k, v in runs.items()}
    out = {
        "machine": info,
        "runs": runs,
        "command": " ".join(sys.argv),
        "load_average_during": loads,
        "results": results,
        "same_values": {s: not v.get("problems") for s, v in samples.items()},
        "feast_client": client_check,
    }
    (d / "server_results.json").write_text(json.dumps(out, indent=1))
    print()
    print(render(out, args))


def render(out: dict[str, Any], args: argparse.Namespace) -> str:
    res = out["results"]
    rows = []
    lines = []
    for store in [s for s in args.stores.split(",") if s]:
        for n_ent in ENTITY_COUNTS:
            for clients in (1, args.clients):
                b = res.get(f"banquet/{store}/{n_ent}/{clients}")
                f = res.get(f"feast/{store}/{n_ent}/{clients}")
                if not b or not f:
                    continue
                rows.append(
                    [
                        store,
                        str(n_ent),
                        str(clients),
                        f"{b['p50_ms']:.2f} / {b['p99_ms']:.2f}",
                        f"{f['p50_ms']:.2f} / {f['p99_ms']:.2f}",
                        f"{b['rps']:.0f}",
                        f"{f['rps']:.0f}",
                        f"{b['rps'] / f['rps']:.1f}x",
                        f"{b['errors']} / {f['errors']}",
                    ]
                )
    lines.append(
        C.markdown_table(
            [
                "store",
                "entities",
                "clients",
                "banquet p50 / p99 ms",
                "Feast p50 / p99 ms",
                "banquet req/s",
                "Feast req/s",
                "req/s ratio",
                "errors b / F",
            ],  # fmt: skip
            rows,
            right={1, 2, 3, 4, 5, 6, 7},
        )
    )
    r1 = res.get("banquet/redis/1/1")
    if r1:
        ok = r1["p99_ms"] <= TARGET_P99_1_MS
        lines.append(
            f"\ntarget Redis, 1 entity, p99 at light load <= {TARGET_P99_1_MS} ms: "
            f"{r1['p99_ms']:.2f} ms -> {'met' if ok else 'MISSED'}"
        )
    for clients in sorted({1, args.clients}):
        b = res.get(f"banquet/redis/1/{clients}")
        f = res.get(f"feast/redis/1/{clients}")
        if b and f:
            ratio = b["rps"] / f["rps"]
            lines.append(
                f"target Redis, 1 entity, {clients} client(s): >= {TARGET_RPS_RATIO}x Feast's "
                f"req/s: {ratio:.1f}x -> {'met' if ratio >= TARGET_RPS_RATIO else 'MISSED'}"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "mode", nargs="?", default="run", choices=["run", "setup", "teardown", "feast-client"]
    )
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--sample-keys", default="[]")
    p.add_argument("--peer", default="banquet")
    p.add_argument("--store", default="sqlite")
    p.add_argument("--data", default="")
    p.add_argument("--stores", default=",".join(STORES))
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--rows-per-key", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5.0, help="length of each load phase")
    p.add_argument("--clients", type=int, default=4, help="concurrent clients (throughput)")
    p.add_argument("--repeat", type=int, default=2, help="runs per system (the best is kept)")
    p.add_argument("--quick", action="store_true", help="2 s phases, one run")
    p.add_argument("--no-wait", action="store_true", help="do not wait for compilers to end")
    p.add_argument("--wait-max", type=float, default=120.0)
    p.add_argument("--max-load", type=float, default=1.5, help="wait for this load average")
    args = p.parse_args()
    if args.quick:
        args.seconds, args.repeat = 2.0, 1
    if args.mode == "setup":
        child_setup(args)
    elif args.mode == "teardown":
        child_teardown(args)
    elif args.mode == "feast-client":
        child_feast_client(args)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
