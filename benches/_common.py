"""Helpers shared by the benchmark scripts in benches/: the machine, child processes with
their peak memory, busy-machine checks, checksums and tables.

Only the standard library here, so any venv (banquet's or the peers') can import it.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
DATA = BENCHES / "data"
# BENCH_BANQUET_PYTHON: banquet from another tree's venv (a branch's build), for a check
# before it is merged
BANQUET_PY = Path(os.environ.get("BENCH_BANQUET_PYTHON") or ROOT / ".venv" / "bin" / "python")
PEERS_VENV = BENCHES / ".venv-peers"
PEERS_PY = PEERS_VENV / "bin" / "python"
RESULT_TAG = "BENCH-RESULT "


# --- the machine -----------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def machine_line(info: dict[str, str] | None = None) -> str:
    i = info or machine_info()
    return f"{i['date']}; {i['nproc']} cores ({i['cpu']}), {i['ram']} RAM; {i['os']}; Python {i['python']}"


COMPILERS = ("cargo", "rustc", "maturin", "cargo-clippy", "clippy-driver")


def busy_processes(names: tuple[str, ...] = COMPILERS) -> list[str]:
    """Other processes whose name is one of ``names`` (compilers by default): benchmarks wait
    for them. Names only, not command lines: many unrelated command lines mention .cargo/bin."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            comm = (p / "comm").read_text().strip()
            if comm in names:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{p.name} {cmd[:100]}")
        except OSError:
            continue
    return found


def wait_until_quiet(max_wait_s: float, poll_s: float = 10.0) -> bool:
    """Wait (at most ``max_wait_s``) until no compiler runs; True when the machine is quiet."""
    deadline = time.monotonic() + max_wait_s
    told = False
    while True:
        busy = busy_processes()
        if not busy:
            return True
        if time.monotonic() >= deadline:
            print(f"  ! still busy after {max_wait_s:.0f}s, running anyway: {busy[0]}", flush=True)
            return False
        if not told:
            print(
                f"  waiting for other work to finish ({len(busy)} processes, e.g. {busy[0][:80]})",
                flush=True,
            )
            told = True
        time.sleep(poll_s)


# --- memory ----------------------------------------------------------------------------------


def rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (``VmHWM``) or current (``VmRSS``) resident set, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- child processes -------------------------------------------------------------------------


@dataclass
class ChildRun:
    ok: bool
    result: dict | None  # the JSON the child printed after RESULT_TAG
    error: str  # why it failed, "" when ok
    maxrss_mb: float  # ru_maxrss of this child (whole life, including its output writing)
    elapsed_s: float  # wall time of the whole child, imports included


def _rss_of(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_child(
    cmd: list[str],
    timeout_s: float,
    log: Path | None = None,
    env: dict | None = None,
    rss_cap_mb: float | None = None,
) -> ChildRun:
    """Run ``cmd`` in its own process group, kill the group after ``timeout_s`` (or once its
    resident memory passes ``rss_cap_mb``: the machine is shared, a runaway peer must not
    bring the kernel's OOM killer onto others). The child's stdout/stderr go to ``log``; its
    result is the last line starting with RESULT_TAG."""
    log = log or Path(os.devnull)
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        timed_out = False
        over_cap = 0.0
        status = None
        rusage = None
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - t0 > timeout_s:
                timed_out = True
            elif rss_cap_mb is not None and _rss_of(proc.pid) > rss_cap_mb:
                over_cap = _rss_of(proc.pid)
            if timed_out or over_cap:
                os.killpg(proc.pid, signal.SIGKILL)  # this child's own group only
                _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - t0
    maxrss = rusage.ru_maxrss / 1024 if rusage else float("nan")
    text = log.read_text(errors="replace") if log != Path(os.devnull) else ""
    result = None
    for line in text.splitlines():
        if line.startswith(RESULT_TAG):
            result = json.loads(line[len(RESULT_TAG) :])
    if timed_out:
        return ChildRun(False, None, f"timed out after {timeout_s:.0f}s", maxrss, elapsed)
    if over_cap:
        why = f"killed at {over_cap:.0f} MB resident (over the {rss_cap_mb:.0f} MB cap) after {elapsed:.0f}s"
        return ChildRun(False, None, why, maxrss, elapsed)
    if proc.returncode != 0 or result is None:
        tail = [ln for ln in text.strip().splitlines() if not ln.startswith(RESULT_TAG)][-3:]
        why = f"exit {proc.returncode}" + (
            ": " + " | ".join(t.strip() for t in tail) if tail else ""
        )
        return ChildRun(False, result, why[:400], maxrss, elapsed)
    return ChildRun(True, result, "", maxrss, elapsed)


def git_commit() -> str:
    """The HEAD commit (short) of the tree banquet runs from, and whether its rust/ or
    python/ files differ from it."""
    tree = BANQUET_PY.parents[2]  # <tree>/.venv/bin/python (not resolved: a symlink)
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(tree), "diff", "--quiet", "HEAD", "--", "rust", "python"],
            capture_output=True,
        ).returncode
        where = "" if tree == ROOT else f" of {tree}"
        return head + where + (" (+ uncommitted changes under rust/ or python/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(result: dict) -> None:
    """Called by a child: print its result for the parent."""
    print(RESULT_TAG + json.dumps(result), flush=True)
    sys.stdout.flush()


# --- tables ----------------------------------------------------------------------------------


def markdown_table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    rows = [[str(c).replace("|", "\\|") for c in r] for r in rows]
    widths = [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h)
        for i, h in enumerate(headers)
    ]

    def fmt(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                str(c).rjust(w) if i in right else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([fmt(headers), sep, *(fmt(r) for r in rows)])


def write_and_apply_repo(repo: Path, peer: str, project: str, offline: str, defs: str) -> None:
    """A fresh feature repo in ``repo`` (sqlite online store) with ``defs`` applied, for
    banquet or Feast; runs in that peer's interpreter."""
    import shutil

    if repo.exists():
        shutil.rmtree(repo)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\n"
        "provider: local\n"
        "registry: data/registry.db\n"
        "online_store:\n"
        "  type: sqlite\n"
        "  path: data/online_store.db\n"
        "offline_store:\n"
        f"  type: {offline}\n"
        "entity_key_serialization_version: 3\n"
    )
    (repo / "definitions.py").write_text(defs)
    if peer == "banquet":
        from banquet import FeatureStore

        FeatureStore(repo_path=repo).apply()  # the repo folder, as `banquet apply` does
        return
    import importlib.util

    from feast import FeatureStore as FeastStore

    spec = importlib.util.spec_from_file_location("bench_defs", repo / "definitions.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    FeastStore(repo_path=str(repo)).apply(mod.OBJECTS)
