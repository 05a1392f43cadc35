"""The suite every registry passes (``registry`` fixture: file | sql): round trips,
bookkeeping, changes that write nothing or fail, independent projects, cheap re-reads, a
writer killed mid-write, and several OS processes applying to one project at once."""

from __future__ import annotations

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
from registry_backends import Location, open_location

from banquet import Entity, FeatureView, Field, FileSource
from banquet.registry import Catalog, Registry
from banquet.registry.base import KINDS, State, empty_state
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


# --- basics ------------------------------------------------------------------------------------


def test_empty_registry(registry: Registry) -> None:
    assert registry.read(PROJECT) == empty_state()
    assert registry.projects() == []


def test_round_trip(registry: Registry, registry_location: Location) -> None:
    defs = _definitions()

    def change(state: State) -> bool:
        for kind, records in defs.items():
            state[kind].update(records)
        state["materializations"]["stats"] = [[1, 2], [5, 1_700_000_000_000_000]]
        return True

    written = registry.update(PROJECT, change)
    again = open_location(registry_location).read(PROJECT)  # a fresh instance, no cache
    assert again == written
    for kind, records in defs.items():
        assert again[kind] == records
    assert again["materializations"] == {"stats": [[1, 2], [5, 1_700_000_000_000_000]]}
    assert set(KINDS) <= set(again)
    catalog = Catalog(PROJECT, again)
    assert catalog.get("feature_views", "stats").entities[0].name == "user"
    assert catalog.materializations("stats") == [(1, 2), (5, 1_700_000_000_000_000)]
    assert registry.projects() == [PROJECT]


def test_changes_and_removals_are_written(registry: Registry) -> None:
    defs = _definitions()

    def first(state: State) -> bool:
        for kind, records in defs.items():
            state[kind].update(records)
        state["materializations"]["stats"] = [[1, 2]]
        return True

    def second(state: State) -> bool:
        state["feature_views"]["stats"]["description"] = "changed"
        del state["data_sources"]["src"]
        state["entities"]["other"] = Entity(name="other").to_dict()
        del state["materializations"]["stats"]
        return True

    registry.update(PROJECT, first)
    written = registry.update(PROJECT, second)
    state = registry.read(PROJECT)
    assert state == written
    assert state["feature_views"]["stats"]["description"] == "changed"
    assert state["data_sources"] == {}
    assert sorted(state["entities"]) == ["other", "user"]
    assert state["materializations"] == {}
    assert state["version"] == 2


def test_version_and_last_change_time(registry: Registry) -> None:
    before = datetime.now(timezone.utc)
    s1 = registry.update(PROJECT, _add_entity("a"))
    assert s1["version"] == 1
    stamp = datetime.fromisoformat(s1["last_updated"])
    assert stamp.tzinfo is not None
    assert (
        before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc) + timedelta(seconds=1)
    )
    time.sleep(0.01)
    s2 = registry.update(PROJECT, _add_entity("b"))
    assert s2["version"] == 2
    assert datetime.fromisoformat(s2["last_updated"]) > stamp
    assert registry.read(PROJECT)["version"] == 2
    assert registry.read(PROJECT)["last_updated"] == s2["last_updated"]


def test_change_returning_false_writes_nothing(registry: Registry) -> None:
    assert registry.update(PROJECT, lambda state: False)["version"] == 0
    assert registry.projects() == []  # a project is not created by a change that changed nothing
    written = registry.update(PROJECT, _add_entity("a"))

    def look_only(state: State) -> bool:
        state["entities"]["ghost"] = {}  # edits without returning True are not written
        return False

    registry.update(PROJECT, look_only)
    assert registry.read(PROJECT) == written


def test_change_that_raises_writes_nothing_and_releases_the_lock(registry: Registry) -> None:
    written = registry.update(PROJECT, _add_entity("a"))

    def boom(state: State) -> bool:
        state["entities"].clear()
        state["entities"]["half"] = {}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        registry.update(PROJECT, boom)
    assert registry.read(PROJECT) == written
    assert registry.update(PROJECT, _add_entity("b"))["version"] == 2  # not deadlocked


def test_projects_are_independent(registry: Registry) -> None:
    registry.update("one", _add_entity("a"))
    registry.update("two", _add_entity("b"))
    registry.update("two", _add_entity("c"))
    assert registry.projects() == ["one", "two"]
    assert list(registry.read("one")["entities"]) == ["a"]
    assert sorted(registry.read("two")["entities"]) == ["b", "c"]
    assert registry.read("one")["version"] == 1 and registry.read("two")["version"] == 2
    registry.delete_project("two")
    assert registry.projects() == ["one"]
    assert registry.read("two") == empty_state()
    assert list(registry.read("one")["entities"]) == ["a"]
    registry.delete_project("never-existed")  # no error
    assert registry.projects() == ["one"]
    assert registry.update("two", _add_entity("d"))["version"] == 1  # a fresh start


def test_read_if_changed(registry: Registry) -> None:
    assert registry.read_if_changed(PROJECT, 0, None) is None  # never applied: still empty
    s1 = registry.update(PROJECT, _add_entity("a"))
    assert registry.read_if_changed(PROJECT, 1, s1["last_updated"]) is None
    assert registry.read_if_changed(PROJECT, 0, None) == s1
    s2 = registry.update(PROJECT, _add_entity("b"))
    assert registry.read_if_changed(PROJECT, 1, s1["last_updated"]) == s2
    # deleted and re-created: the same version number, another time, so it counts as changed
    registry.delete_project(PROJECT)
    assert registry.read_if_changed(PROJECT, 2, s2["last_updated"]) == empty_state()
    s3 = registry.update(PROJECT, _add_entity("c"))
    assert registry.read_if_changed(PROJECT, 1, s1["last_updated"]) == s3


# --- a writer killed mid-write -----------------------------------------------------------------

# The child runs one update of 200 entities and stops for good at the backend's last step
# before its write becomes visible: the file registry after writing (and fsyncing) its temp
# file, the SQL registry after writing every row but before the commit.
_KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from banquet.entity import Entity

    kind, where, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def hang():  # the write is under way: tell the parent, then wait to be killed
        ready.write_text(str(os.getpid()))
        time.sleep(60)

    if kind == "file":
        from banquet.registry.file import FileRegistry

        real_fsync = os.fsync

        def fsync_then_hang(fd):
            real_fsync(fd)
            hang()

        os.fsync = fsync_then_hang
        registry = FileRegistry(where)
    else:
        from banquet.registry.sql import SqlRegistry

        real_write = SqlRegistry._write_changes

        def write_then_hang(self, *args):
            real_write(self, *args)
            hang()

        SqlRegistry._write_changes = write_then_hang
        registry = SqlRegistry(where)

    def change(state):
        for i in range(200):
            name = f"killed_{i}"
            state["entities"][name] = Entity(name=name).to_dict()
        state["materializations"]["killed"] = [[1, 2]]
        return True

    registry.update("proj", change)
    print("should never get here")
    """
)


def _assert_writers_wait(location: Location, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the killed writer hangs, no other writer can change the project."""
    kind, where = location
    if kind == "file":
        import fcntl

        with open(f"{where}.lock", "a") as lock, pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert list(Path(where).parent.glob(".*.tmp"))
        return
    from banquet.errors import RegistryConflict
    from banquet.registry import sql

    monkeypatch.setattr(sql, "LOCK_TIMEOUT_S", 1)
    with pytest.raises(RegistryConflict, match="another process is changing project 'proj'"):
        open_location(location).update(PROJECT, _add_entity("impatient"))
    monkeypatch.undo()


def test_writer_killed_mid_write(
    registry: Registry,
    registry_location: Location,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written = registry.update(PROJECT, _add_entity("a"))
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, *registry_location, str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the writer never reached the write"
            time.sleep(0.02)
        _assert_writers_wait(registry_location, monkeypatch)
        # readers never see a half-written registry
        assert registry.read(PROJECT) == written
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()  # SIGKILL again is harmless; after a failed check it stops the writer
        out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert b"should never get here" not in out

    state = open_location(registry_location).read(PROJECT)
    assert state == written
    # the dead writer's lock is gone (the kernel closed its file / its connection): the next
    # apply proceeds at once
    started = time.monotonic()
    assert registry.update(PROJECT, _add_entity("b"))["version"] == 2
    assert time.monotonic() - started < 10
    assert sorted(registry.read(PROJECT)["entities"]) == ["a", "b"]
    assert registry.read(PROJECT)["materializations"] == {}


# --- concurrent writers ------------------------------------------------------------------------


def _apply_entities(location: Location, worker: int, count: int, start: Any) -> None:
    """Run in a separate process: add `count` entities, one `update` each."""
    registry = open_location(location)
    start.wait(60)
    for i in range(count):
        registry.update(PROJECT, _add_entity(f"w{worker}_e{i}"))


def _apply_view(location: Location, worker: int, start: Any) -> None:
    """Run in a separate process: add one entity, source and feature view in one `update`,
    and record a materialized interval of its view."""
    registry = open_location(location)
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

    def materialized(state: State) -> bool:
        state["materializations"][fv.name] = [[worker, worker + 10]]
        return True

    registry.update(PROJECT, change)
    registry.update(PROJECT, materialized)


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


def test_concurrent_processes_lose_nothing(registry: Registry, registry_location: Location) -> None:
    registry.update(PROJECT, _add_entity("seed"))
    workers, count = 4, 15
    _run_all([(_apply_entities, (registry_location, w, count)) for w in range(workers)])
    state = registry.read(PROJECT)
    expected = {"seed"} | {f"w{w}_e{i}" for w in range(workers) for i in range(count)}
    assert set(state["entities"]) == expected
    assert state["version"] == 1 + workers * count
    Catalog(PROJECT, state)  # every record is intact


def test_concurrent_applies_of_whole_views(registry: Registry, registry_location: Location) -> None:
    # nothing applied before: the workers race to create the project (and the SQL tables)
    workers = 4
    _run_all([(_apply_view, (registry_location, w)) for w in range(workers)])
    state = registry.read(PROJECT)
    assert set(state["feature_views"]) == {f"view{w}" for w in range(workers)}
    assert set(state["entities"]) == {f"user{w}" for w in range(workers)}
    assert set(state["data_sources"]) == {f"src{w}" for w in range(workers)}
    assert state["materializations"] == {f"view{w}": [[w, w + 10]] for w in range(workers)}
    assert state["version"] == 2 * workers
    assert set(Catalog(PROJECT, state).feature_views) == {f"view{w}" for w in range(workers)}
