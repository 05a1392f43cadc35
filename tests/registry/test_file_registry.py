"""What only the file registry does: the JSON format, nothing written by a read or a no-op,
a crash or failure between the temp file and the rename, corrupt files. The behaviour every
registry shares (round trips, a killed writer, concurrent processes) is in test_registry.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from banquet import Entity
from banquet.config import RepoConfig
from banquet.errors import BanquetError, RegistryCorrupt, RegistryError
from banquet.registry import open_registry
from banquet.registry.base import KINDS, State, empty_state
from banquet.registry.file import FORMAT, FileRegistry

PROJECT = "proj"


def _add_entity(name: str) -> Any:
    def change(state: State) -> bool:
        state["entities"][name] = Entity(name=name, join_keys=[f"{name}_id"]).to_dict()
        return True

    return change


@pytest.fixture
def reg(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "data" / "registry.db")


# --- basics ------------------------------------------------------------------------------------


def test_reading_creates_no_file(reg: FileRegistry) -> None:
    assert reg.read(PROJECT) == empty_state()
    assert reg.projects() == []
    assert not reg.path.exists()  # reading creates nothing


def test_no_op_change_leaves_the_file_untouched(reg: FileRegistry) -> None:
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
