"""The file registry: round trips, bookkeeping, the JSON format, atomic writes (a writer killed
mid-write leaves the previous registry readable), concurrent writers, corrupt files."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from banquet import Entity, FeatureView, Field, FileSource
from banquet.config import RepoConfig
from banquet.errors import BanquetError, RegistryCorrupt, RegistryError
from banquet.registry import Catalog, open_registry
from banquet.registry.base import KINDS, State, empty_state
from banquet.registry.file import FORMAT, FileRegistry
from banquet.types import Int64

PROJECT = "proj"


def _add_entity(name: str) -> Any:
    def change(state: State) -> bool:
        state["entities"][name] = Entity(name=name, join_keys=[f"{name}_id"]).to_dict()
        return True

    return change


def _definitions() -> dict[str, dict[str, Any]]:
    user = Entity(name="user", join_keys=["user_id"])
    fv = FeatureView(
        name="stats",
        entities=[user],
        source=FileSource(name="src", path="data/s.parquet", timestamp_field="ts"),
        schema=[Field(name="n", dtype=Int64)],
    )
    return {
        "entities": {"user": user.to_dict()},
        "data_sources": {"src": fv.source.to_dict()},
        "feature_views": {"stats": fv.to_dict()},
    }


@pytest.fixture
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "data" / "registry.db")


# --- basics ------------------------------------------------------------------------------------


def test_empty_registry(reg: FileRegistry) -> None:
    assert reg.read(PROJECT) == empty_state()
    assert reg.projects() == []
    assert not reg.path.exists()  # reading creates nothing


def test_round_trip(reg: FileRegistry) -> None:
    defs = _definitions()

    def change(state: State) -> bool:
        for kind, records in defs.items():
            state[kind].update(records)
        state["materializations"]["stats"] = [[1, 2]]
        return True

    written = reg.update(PROJECT, change)
    again = FileRegistry(reg.path).read(PROJECT)
    assert again == written
    for kind, records in defs.items():
        assert again[kind] == records
    assert again["materializations"] == {"stats": [[1, 2]]}
    assert set(KINDS) <= set(again)
    catalog = Catalog(PROJECT, again)
    assert catalog.get("feature_views", "stats").entities[0].name == "user"
    assert catalog.materializations("stats") == [(1, 2)]
    assert reg.projects() == [PROJECT]


def test_version_and_last_change_time(reg: FileRegistry) -> None:
    before = datetime.now(timezone.utc)
    s1 = reg.update(PROJECT, _add_entity("a"))
    assert s1["version"] == 1
    stamp = datetime.fromisoformat(s1["last_updated"])
    assert stamp.tzinfo is not None
    assert (
        before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc) + timedelta(seconds=1)
    )
    time.sleep(0.01)
    s2 = reg.update(PROJECT, _add_entity("b"))
    assert s2["version"] == 2
    assert datetime.fromisoformat(s2["last_updated"]) > stamp
    assert reg.read(PROJECT)["version"] == 2
    assert reg.read(PROJECT)["last_updated"] == s2["last_updated"]


def test_change_returning_false_writes_nothing(reg: FileRegistry) -> None:
    assert reg.update(PROJECT, lambda state: False)["version"] == 0
    assert not reg.path.exists()
    reg.update(PROJECT, _add_entity("a"))
    raw = reg.path.read_bytes()
    mtime = reg.path.stat().st_mtime_ns

    def look_only(state: State) -> bool:
        state["entities"]["ghost"] = {}  # edits without returning True are not written
        return False

    reg.update(PROJECT, look_only)
    assert reg.path.read_bytes() == raw and reg.path.stat().st_mtime_ns == mtime
    assert reg.read(PROJECT)["version"] == 1


def test_change_that_raises_writes_nothing_and_releases_the_lock(reg: FileRegistry) -> None:
    reg.update(PROJECT, _add_entity("a"))
    raw = reg.path.read_bytes()

    def boom(state: State) -> bool:
        state["entities"].clear()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        reg.update(PROJECT, boom)
    assert reg.path.read_bytes() == raw
    assert reg.update(PROJECT, _add_entity("b"))["version"] == 2  # not deadlocked


def test_projects_are_independent(reg: FileRegistry) -> None:
    reg.update("one", _add_entity("a"))
    reg.update("two", _add_entity("b"))
    reg.update("two", _add_entity("c"))
    assert reg.projects() == ["one", "two"]
    assert list(reg.read("one")["entities"]) == ["a"]
    assert sorted(reg.read("two")["entities"]) == ["b", "c"]
    assert reg.read("one")["version"] == 1 and reg.read("two")["version"] == 2
    reg.delete_project("two")
    assert reg.projects() == ["one"]
    assert reg.read("two") == empty_state()
    assert list(reg.read("one")["entities"]) == ["a"]
    reg.delete_project("never-existed")  # no error
    assert reg.projects() == ["one"]


def test_json_format(reg: FileRegistry) -> None:
    reg.update(PROJECT, _add_entity("a"))
    doc = json.loads(reg.path.read_text())
    assert doc["format"] == FORMAT == "banquet-registry/1"
    assert list(doc["projects"]) == [PROJECT]
    project = doc["projects"][PROJECT]
    assert project["entities"] == {"a": {"name": "a", "join_key": "a_id"}}
    assert project["version"] == 1
    assert set(KINDS) <= set(project) and "materializations" in project
    # stable text: sorted keys, so two equal registries are byte-identical
    text = reg.path.read_text()
    assert text == json.dumps(doc, indent=1, sort_keys=True)
    assert not list(reg.path.parent.glob(".*.tmp"))  # no temp file left behind


def test_open_registry_from_config(tmp_path: Path) -> None:
    cfg = RepoConfig.from_dict({"project": "p", "registry": "meta/reg.json"}, repo_path=tmp_path)
    reg = open_registry(cfg)
    assert isinstance(reg, FileRegistry)
    assert reg.path == tmp_path.resolve() / "meta" / "reg.json"
    reg.update("p", _add_entity("a"))  # creates the folder
    assert (tmp_path / "meta" / "reg.json").is_file()


# --- atomicity ---------------------------------------------------------------------------------


class _Crash(BaseException):
    """Stands for the process dying: nothing after it runs, no cleanup by `except Exception`."""


def test_crash_between_temp_write_and_rename(
    reg: FileRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.update(PROJECT, _add_entity("a"))
    raw = reg.path.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        assert Path(src).read_bytes()  # the new registry was fully written to the temp file
        raise _Crash

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(_Crash):
        reg.update(PROJECT, _add_entity("b"))
    monkeypatch.undo()

    assert reg.path.read_bytes() == raw
    state = FileRegistry(reg.path).read(PROJECT)
    assert list(state["entities"]) == ["a"] and state["version"] == 1
    # the next writer is not blocked and ignores the stale temp file
    assert reg.update(PROJECT, _add_entity("c"))["version"] == 2
    assert sorted(reg.read(PROJECT)["entities"]) == ["a", "c"]


def test_failed_rename_is_a_registry_error(
    reg: FileRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.update(PROJECT, _add_entity("a"))
    raw = reg.path.read_bytes()

    def fail(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(RegistryError, match="cannot write registry.*No space left"):
        reg.update(PROJECT, _add_entity("b"))
    monkeypatch.undo()
    assert reg.path.read_bytes() == raw
    assert not list(reg.path.parent.glob(".*.tmp"))  # cleaned up


_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from banquet.entity import Entity
    from banquet.registry.file import FileRegistry

    path, ready = Path(sys.argv[1]), Path(sys.argv[2])
    real_fsync = os.fsync

    def hang(fd):  # the temp file is being written: tell the parent, then wait to be killed
        real_fsync(fd)
        ready.write_text(str(os.getpid()))
        time.sleep(60)

    os.fsync = hang

    def change(state):
        for i in range(200):
            name = f"killed_{i}"
            state["entities"][name] = Entity(name=name).to_dict()
        return True

    FileRegistry(path).update("proj", change)
    print("should never get here")
    """
)


def test_writer_killed_mid_write(reg: FileRegistry, tmp_path: Path) -> None:
    reg.update(PROJECT, _add_entity("a"))
    raw = reg.path.read_bytes()
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(reg.path), str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the writer never reached the write"
            time.sleep(0.02)
        # the writer holds the lock and its temp file exists
        with open(f"{reg.path}.lock", "a") as lock, pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert list(reg.path.parent.glob(".*.tmp"))
        # readers never see a half-written registry
        assert list(reg.read(PROJECT)["entities"]) == ["a"]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()  # SIGKILL again is harmless; after a failed check it stops the writer
        out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert b"should never get here" not in out

    assert reg.path.read_bytes() == raw
    state = FileRegistry(reg.path).read(PROJECT)
    assert list(state["entities"]) == ["a"] and state["version"] == 1
    # the kernel released the dead writer's lock: the next apply proceeds
    assert reg.update(PROJECT, _add_entity("b"))["version"] == 2
    assert sorted(reg.read(PROJECT)["entities"]) == ["a", "b"]


# --- concurrent writers ------------------------------------------------------------------------


def _apply_entities(path: str, worker: int, count: int, start: Any) -> None:
    """Run in a separate process: add `count` entities, one `update` each."""
    registry = FileRegistry(path)
    start.wait(60)
    for i in range(count):
        registry.update(PROJECT, _add_entity(f"w{worker}_e{i}"))


def _apply_view(path: str, worker: int, start: Any) -> None:
    """Run in a separate process: add one entity, source and feature view in one `update`."""
    registry = FileRegistry(path)
    user = Entity(name=f"user{worker}", join_keys=["user_id"])
    fv = FeatureView(
        name=f"view{worker}",
        entities=[user],
        source=FileSource(name=f"src{worker}", path=f"{worker}.parquet", timestamp_field="ts"),
        schema=[Field(name="n", dtype=Int64)],
    )
    start.wait(60)

    def change(state: State) -> bool:
        state["entities"][user.name] = user.to_dict()
        state["data_sources"][fv.source.name] = fv.source.to_dict()
        time.sleep(0.05)  # widen the read-modify-write window
        state["feature_views"][fv.name] = fv.to_dict()
        return True

    registry.update(PROJECT, change)


def _run_all(targets: list[tuple[Any, tuple[Any, ...]]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=fn, args=(*args, start)) for fn, args in targets]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in procs] == [0] * len(procs)


def test_concurrent_processes_lose_nothing(reg: FileRegistry) -> None:
    reg.update(PROJECT, _add_entity("seed"))
    workers, count = 4, 15
    _run_all([(_apply_entities, (str(reg.path), w, count)) for w in range(workers)])
    state = reg.read(PROJECT)
    expected = {"seed"} | {f"w{w}_e{i}" for w in range(workers) for i in range(count)}
    assert set(state["entities"]) == expected
    assert state["version"] == 1 + workers * count
    Catalog(PROJECT, state)  # every record is intact


def test_concurrent_applies_of_whole_views(reg: FileRegistry) -> None:
    workers = 4
    _run_all([(_apply_view, (str(reg.path), w)) for w in range(workers)])
    state = reg.read(PROJECT)
    assert set(state["feature_views"]) == {f"view{w}" for w in range(workers)}
    assert set(state["entities"]) == {f"user{w}" for w in range(workers)}
    assert set(state["data_sources"]) == {f"src{w}" for w in range(workers)}
    assert state["version"] == workers
    assert set(Catalog(PROJECT, state).feature_views) == {f"view{w}" for w in range(workers)}


# --- corrupt files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\x01\x02 not json",
        b'{"format": "banquet-registry/1", "projects": {"proj": {"entit',
        b"[1, 2, 3]",
        b'"a string"',
        b'{"format": "something-else/9", "projects": {}}',
        b'{"projects": {}}',
        b'{"format": "banquet-registry/1"}',
        b'{"format": "banquet-registry/1", "projects": []}',
    ],
    ids=[
        "empty",
        "garbage",
        "truncated",
        "list",
        "string",
        "other-format",
        "no-format",
        "no-projects",
        "projects-list",
    ],
)
def test_corrupt_file(reg: FileRegistry, content: bytes) -> None:
    reg.path.parent.mkdir(parents=True)
    reg.path.write_bytes(content)
    with pytest.raises(RegistryCorrupt, match=str(reg.path)) as info:
        reg.read(PROJECT)
    assert isinstance(info.value, RegistryError) and isinstance(info.value, BanquetError)
    with pytest.raises(RegistryCorrupt):
        reg.projects()
    with pytest.raises(RegistryCorrupt):
        reg.update(PROJECT, _add_entity("a"))
    assert reg.path.read_bytes() == content  # never overwritten


def test_unreadable_path_is_a_registry_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(RegistryError, match="cannot read registry"):
        FileRegistry(tmp_path / "dir.db").read(PROJECT)
